"""The parts of an HTTP request that webhook checks read, and a case-insensitive header view."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

# A mapping (a dict, Starlette's Headers) or the pairs themselves (an ASGI scope's raw
# `headers`, as bytes, or decoded to str).
HeaderInput: TypeAlias = (
    Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]
)


class HeaderView:
    """Header values by name, matched case-insensitively.

    A name that appears more than once keeps its first value, as Starlette's
    ``request.headers[name]`` does: the signature headers of every scheme are single-valued, so a
    repeat is never combined. Byte pairs are decoded as Latin-1, as HTTP servers decode them.
    """

    __slots__ = ("_repeats", "_values")

    def __init__(self, headers: HeaderInput | HeaderView) -> None:
        if isinstance(headers, HeaderView):
            self._values: dict[str, str] = headers._values
            self._repeats: dict[str, list[str]] = headers._repeats
            return
        pairs: Iterable[tuple[str | bytes, str | bytes]]
        # `type() is dict` first: the common case, and cheaper than the ABC check.
        if type(headers) is dict or isinstance(headers, Mapping):
            pairs = headers.items()
        else:
            pairs = headers
        values: dict[str, str] = {}
        repeats: dict[str, list[str]] = {}
        for name, value in pairs:
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError("header names and values must be str or bytes")
            key = name.lower()
            if key in values:
                repeats.setdefault(key, []).append(value)
            else:
                values[key] = value
        self._values = values
        self._repeats = repeats

    def get(self, name: str) -> str | None:
        """The value of header `name` (any case), or None when it is absent."""
        return self._values.get(name.lower())

    def present(self, name: str) -> str | None:
        """The value of header `name` when it is present and not empty, else None."""
        return self._values.get(name.lower()) or None

    def get_all(self, name: str) -> list[str]:
        """Every value of header `name`, in the order received (for list-valued headers such as
        ``X-Forwarded-For``, whose lines a proxy may have added one by one)."""
        key = name.lower()
        first = self._values.get(key)
        return [] if first is None else [first, *self._repeats.get(key, ())]

    def __repr__(self) -> str:
        # Header values can be credentials (Authorization, API keys): only the names are shown.
        return f"HeaderView({sorted(self._values)!r})"


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """What `WebhookAuth.check` needs of an incoming request.

    `url` is the full URL as the sender requested it (scheme, host, path and query): Twilio signs
    it, and an API key may ride in its query. `client_ip` is the address of the peer that opened
    the connection (Starlette's ``request.client.host``), checked by an IP allow-list.
    """

    headers: HeaderInput | HeaderView
    body: bytes = b""
    url: str | None = None
    client_ip: str | None = None
    header_view: HeaderView = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "header_view", HeaderView(self.headers))

    def __repr__(self) -> str:
        # Neither headers, body nor query: they may carry credentials (an API key in the query).
        path = None if self.url is None else self.url.split("?", 1)[0]
        size = len(self.body)
        return f"WebhookRequest(url={path!r}, client_ip={self.client_ip!r}, body={size} bytes)"
