"""Wire protocol, till sync client and the reference back office."""
