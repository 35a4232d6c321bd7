"""Sync: the wire protocol, the desk sync client and the central API server."""
