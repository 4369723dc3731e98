"""The model service: a FastAPI app that answers with the trained artifact itself.

`create_app(settings)` builds the app; `labline serve` runs it on uvicorn. Every answer is
committed to the request log before it is sent, so any answer can be replayed later.
"""

from labline.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def create_app(settings: ServeSettings):
    """Build the FastAPI app (imported lazily: the CLI should not pay for FastAPI on every call)."""
    from labline.serve.app import create_app as _create_app

    return _create_app(settings)
