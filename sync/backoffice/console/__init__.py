"""The programme owners' console: server-rendered pages (Jinja2, htmx for partial updates)
served by the back office itself under ``/console``.

``users`` holds the console's people (roles, argon2 password hashes, lockout) and ``audit``
the append-only, hash-chained log of every change a person makes; ``roles`` is the
permission table; ``web`` is the pages (sessions, CSRF, sign-in, home, audit) that
``sync.backoffice.app`` mounts.
"""
