"""The chat page (Gradio).

`ui.app.build_ui(assistant)` builds the page, `ui.app.mount_ui(app, assistant)`
mounts it on a FastAPI app, `ui.handlers` holds the pure functions behind it
and `ui.server` serves it alone (local use and the browser test).  Gradio is
imported lazily so `ui.handlers` stays cheap to import.
"""

__all__ = ["build_ui", "mount_ui"]


def __getattr__(name):
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
