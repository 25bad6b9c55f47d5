"""The back office: the server the tills sync with (enrollment, the exactly-once ledger,
the change feed, rules, member tokens, KPIs), on SQLite or PostgreSQL.

Modules, from the top down (each imports only modules below it; the ``layers`` contract
in ``pyproject.toml`` holds them to that order):

- ``app``: the HTTP face (Starlette). Each handler parses, calls one
  ``service.Backoffice`` use case and presents it; the app hands the service's
  ``Context`` to the projector and verifier threads and the console.
- ``service``: ``Backoffice``, the use cases (initialise, enroll, authenticate, publish
  rules, push, verdicts, changes and snapshot, member lookup and tokens, health, KPIs,
  console users, bulk member load). It builds the one ``context.Context`` and passes it
  down; nothing below sees the service.
- ``console``: the programme owners' pages and their users.
- ``dashboard``: the console's dashboard (a period's figures over the roll-ups, distinct
  buyers, cohorts, the owner's monthly plans).
- ``kpi``: the programme owners' report, over the ledger tables (``Context``).
- ``ingest``: accepting a pushed batch (checks, positions, conflicts, seq gaps), then
  projecting a small batch inline through ``project``.
- ``verify``: the background re-scoring of applied purchases (a ``worker.RoundWorker``).
- ``project``: the projector, applying accepted events in order, exactly once; each run
  of one terminal's events goes to a ``batch.Batch``; verdicts for the tills.
- ``batch``: one run of events in memory (set-based reads, writes collected, each
  changed member written once); ``effects`` applies each event through its ``Run``
  interface.
- ``rollups``: the dashboard's daily roll-ups of the KPI figures, kept by each batch.
- ``effects``: what a purchase, a refund and a registration do to the ledger.
- ``checks`` (pure event and payload validation), ``feed`` (the change feed and member
  snapshot), ``worker`` (the background round thread), ``schema`` (migrations),
  ``terminal`` (an enrolled till).
- ``context``: ``Context`` (database, programmes, clock, time of the last push), the
  narrow set of handles the modules above share; ``lease``: which node of several on one
  PostgreSQL database runs a worker's rounds (taken over when that node dies).
- ``db``: one database interface over SQLite and PostgreSQL; ``pg`` its psycopg side
  (imported only for a ``postgresql://`` URL); ``utf8`` the stored-text type of both.

Nothing on the till side (``agent``, ``drivers``, ``tui``, ``sync.client``,
``sync.enroll``, and ``kassa`` except its back-office commands and demos) imports this
package: a till runs without it.
"""
