"""The sync wire protocol (``sync.protocol``), the till's sync client (``sync.client``,
``sync.enroll``), the back office server (``sync.backoffice``, its HTTP API declared in
``sync.backoffice_api``), and the OpenAPI document builder both HTTP APIs use
(``sync.openapi``)."""
