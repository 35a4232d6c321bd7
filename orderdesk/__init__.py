"""orderdesk: every order on one configurable state machine, a screen per role, offline-first."""

__version__ = "0.1.0"
