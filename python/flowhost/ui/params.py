"""Query parameters of the pages: a value a person typed into the address bar that does not
parse is the default, never an error page."""

from __future__ import annotations

from starlette.requests import Request


def whole_number(request: Request, name: str, default: int = 0, *, least: int = 0) -> int:
    text = request.query_params.get(name, "").strip()
    if not text.isdigit() or len(text) > 18:
        return default
    return max(int(text), least)
