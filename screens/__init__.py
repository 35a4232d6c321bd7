"""The Textual side of orderdesk. The core (``orderdesk``) never imports this package; the CLI builds the
app through ``build_app``."""

from screens.app import HOME_SCREENS, OrderdeskApp, build_app

__all__ = ["HOME_SCREENS", "OrderdeskApp", "build_app"]
