"""The members' own pages under ``/my``: sign-up from a store's poster, the card with its
rotating QR, consents and the request to erase; installable as a PWA. ``web.members_site``
is the mount the back office's app adds."""
