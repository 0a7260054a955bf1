"""flowhost's HTTP side: an ASGI app (Starlette) the host serves in its own event loop."""

from flowhost.api.app import create_app

__all__ = ["create_app"]
