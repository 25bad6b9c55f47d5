"""Who may open what in the console: the permission table.

A role grants, per section of the console, ``read`` (open its pages) and possibly
``write`` (change something there). The programme owner reads and changes everything (the
audit log is read-only to everyone); analysts read everything; marketing runs coupons,
segments, programme rules and the webhook subscriptions; support answers members; a store
manager sees their own store only (``User.store_id``; the pages filter by it). Managing
people and the audit log are the owner's alone.
"""

from __future__ import annotations

from typing import Final, Literal

Access = Literal["read", "write"]

SECTIONS: Final = (
    "dashboard",
    "members",
    "coupons",
    "segments",
    "rules",
    "stores",
    "webhooks",
    "users",
    "audit",
)
"""The console's sections, in the order the home page lists them."""

_READ: Final = frozenset({"read"})
_WRITE: Final = frozenset({"read", "write"})

PERMISSIONS: Final[dict[str, dict[str, frozenset[str]]]] = {
    "owner": {s: _WRITE for s in SECTIONS if s != "audit"} | {"audit": _READ},
    "analyst": {s: _READ for s in SECTIONS if s not in ("users", "audit")},
    "marketing": {"coupons": _WRITE, "segments": _WRITE, "rules": _WRITE, "webhooks": _WRITE},
    "support": {"members": _WRITE},
    "store_manager": {"dashboard": _READ, "members": _READ, "stores": _READ},
}
"""role -> section -> the access it grants; a section missing from a role is refused."""

ROLES: Final = tuple(PERMISSIONS)
STORE_SCOPED: Final = frozenset({"store_manager"})
"""Roles bound to one store: such a user has a ``store_id`` and sees nothing of others."""


def allows(role: str, section: str, access: Access = "read") -> bool:
    """Whether ``role`` may ``access`` ``section`` (unknown roles and sections: no)."""
    return access in PERMISSIONS.get(role, {}).get(section, frozenset())


def sections(role: str) -> list[str]:
    """The sections ``role`` may open, in the home page's order."""
    return [s for s in SECTIONS if allows(role, s)]
