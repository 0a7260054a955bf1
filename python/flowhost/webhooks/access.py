"""Webhook auth without signatures: bearer token, HTTP basic, API key, and a source IP allow-list.

Credentials are compared as SHA-256 digests with `hmac.compare_digest`: every comparison takes
the same time whatever the presented value (its length included), and only digests of the
configured secrets are kept in memory.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import sha256
from typing import TypeAlias
from urllib.parse import parse_qs, urlsplit

from flowhost.errors import ConfigurationError, WebhookVerificationError
from flowhost.webhooks.request import HeaderView
from flowhost.webhooks.signing import any_equal

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

BEARER_CHALLENGE = "Bearer"
BASIC_CHALLENGE = 'Basic realm="flowhost webhooks", charset="UTF-8"'
FORWARDED_FOR = "X-Forwarded-For"


def digest(secret: bytes) -> bytes:
    return sha256(secret).digest()


def refuse(reason: str, message: str, challenge: str | None = None) -> WebhookVerificationError:
    if challenge is None:
        return WebhookVerificationError(message, reason=reason)
    return WebhookVerificationError(message, reason=reason, challenge=challenge)


def authorization(headers: HeaderView, scheme: str, challenge: str) -> str:
    """The credentials of an ``Authorization: <scheme> <credentials>`` header (scheme in any
    case); refused as missing when there is no such header for that scheme."""
    given, _, credentials = (headers.get("authorization") or "").strip().partition(" ")
    credentials = credentials.strip()
    if given.lower() != scheme or not credentials:
        raise refuse("missing_credentials", f"no {scheme.title()} credentials", challenge)
    return credentials


def check_bearer(tokens: tuple[bytes, ...], headers: HeaderView) -> None:
    """`tokens`: digests of the accepted tokens."""
    token = authorization(headers, "bearer", BEARER_CHALLENGE)
    if not any_equal(tokens, digest(token.encode("utf-8", "surrogatepass"))):
        raise refuse("bad_credentials", "the bearer token is not accepted", BEARER_CHALLENGE)


def check_basic(username: bytes, passwords: tuple[bytes, ...], headers: HeaderView) -> None:
    """`username`, `passwords`: digests of the user name and of the accepted passwords."""
    credentials = authorization(headers, "basic", BASIC_CHALLENGE)
    try:
        decoded = base64.b64decode(credentials.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise refuse("malformed_header", "the Basic credentials are not base64 of UTF-8") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise refuse("malformed_header", "the Basic credentials have no user:password")
    # Both compared, always: which one failed is not told, in words or in time.
    user_ok = any_equal((username,), digest(user.encode("utf-8")))
    password_ok = any_equal(passwords, digest(password.encode("utf-8")))
    if not (user_ok & password_ok):
        raise refuse(
            "bad_credentials", "the user name or password is not accepted", BASIC_CHALLENGE
        )


def check_api_key(
    keys: tuple[bytes, ...],
    headers: HeaderView,
    url: str | None,
    *,
    header: str | None = None,
    query: str | None = None,
) -> None:
    """`keys`: digests of the accepted keys, looked for in header `header` or in the query
    parameter `query` of `url`."""
    if header is not None:
        where, presented = f"the {header} header", headers.present(header)
    else:
        values = parse_qs(urlsplit(url or "").query).get(query or "")
        where, presented = f"the {query} query parameter", values[0] if values else None
    if not presented:
        raise refuse("missing_credentials", f"no API key in {where}")
    if not any_equal(keys, digest(presented.encode("utf-8", "surrogatepass"))):
        raise refuse("bad_credentials", f"the API key in {where} is not accepted")


def parse_address(text: str) -> Address | None:
    """An address as a peer or a proxy header gives it: IPv6 maybe in brackets or with a zone,
    IPv4-mapped IPv6 read as the IPv4 address it is."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(entries: Iterable[object], field: str) -> tuple[Network, ...]:
    """CIDRs (``10.0.0.0/8``, ``2001:db8::/32``) or single addresses; host bits must be zero."""
    networks = []
    for entry in entries:
        try:
            if not isinstance(entry, str):
                raise ValueError(entry)
            networks.append(ipaddress.ip_network(entry.strip()))
        except ValueError:
            raise ConfigurationError(
                f"{field}: {entry!r} is not an IP address or CIDR network", field=field
            ) from None
    return tuple(networks)


def within(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


@dataclass(frozen=True, slots=True)
class IpAllowList:
    """Source addresses allowed to call a webhook.

    The client is the connection's peer. When the peer is one of `trusted_proxies`, the client
    is read from ``X-Forwarded-For`` instead: walking it from the right (the entry the nearest
    proxy added), past every trusted proxy, to the first address that is not one. Entries left of
    that are whatever the client claimed and are never read. With no trusted proxies the header
    is ignored, so a client cannot choose its address by sending it.
    """

    networks: tuple[Network, ...]
    trusted_proxies: tuple[Network, ...] = ()

    def client(self, peer: str | None, headers: HeaderView) -> Address:
        address = parse_address(peer) if peer else None
        if address is None:
            raise refuse("unknown_client", "the client's address is not known")
        if not within(address, self.trusted_proxies):
            return address
        hops = [hop for line in headers.get_all(FORWARDED_FOR) for hop in line.split(",")]
        for hop in reversed(hops):
            parsed = parse_address(hop)
            if parsed is None:
                raise refuse("malformed_header", f"an {FORWARDED_FOR} entry is not an address")
            address = parsed
            if not within(address, self.trusted_proxies):
                break
        return address

    def check(self, peer: str | None, headers: HeaderView) -> None:
        if not within(self.client(peer, headers), self.networks):
            raise refuse("ip_not_allowed", "the client's address is not allowed")
