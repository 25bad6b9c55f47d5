"""The console's people and their traces: users with roles and sessions (``users``), the
permission table (``roles``) and the hash-chained audit log of every change a person makes
(``audit``). The back office's service owns these use cases; the console's pages call it."""
