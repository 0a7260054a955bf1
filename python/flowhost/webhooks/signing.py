"""What the signature schemes share: secrets turned into keys, the clock, the request they read,
and the failures they raise.

Nothing here logs, and no message carries a secret or a signature (expected or given).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple, TypeAlias

from flowhost.errors import ConfigurationError, WebhookVerificationError
from flowhost.webhooks.request import HeaderView

Secret: TypeAlias = str | bytes
# One secret, or several while a secret is being rotated: a request signed with any of them passes.
SecretInput: TypeAlias = Secret | Sequence[Secret]
# A point in time: unix seconds, or a timezone-aware datetime.
Instant: TypeAlias = float | int | datetime

STANDARD_WEBHOOKS_PREFIX = "whsec_"


class SignedRequest(NamedTuple):
    """One request as a scheme's verifier reads it (a tuple: built once per request, cheaply)."""

    headers: HeaderView
    body: bytes
    now: float
    """Unix seconds of the verdict (the caller's clock or the pinned one)."""
    tolerance: float | None
    """Seconds a signed timestamp may be away from `now`; None skips the timestamp check."""
    url: str | None = None


def refuse(reason: str, message: str) -> WebhookVerificationError:
    return WebhookVerificationError(message, reason=reason)


def secret_items(secret: SecretInput, field: str = "secret") -> tuple[Secret, ...]:
    """The secrets of `secret` (one, or a non-empty list for rotation), each a non-blank str or
    non-empty bytes."""
    items: tuple[object, ...]
    if isinstance(secret, str | bytes):
        items = (secret,)
    elif isinstance(secret, Sequence) and not isinstance(secret, bytearray):
        items = tuple(secret)
        if not items:
            raise ConfigurationError(f"{field}: the list of secrets is empty", field=field)
    else:
        raise ConfigurationError(
            f"{field}: a secret is a str, bytes or a list of them", field=field
        )
    for item in items:
        if not isinstance(item, str | bytes):
            raise ConfigurationError(f"{field}: a secret is a str or bytes", field=field)
        if not (item.strip() if isinstance(item, str) else item):
            raise ConfigurationError(f"{field}: a secret is empty", field=field)
    return items  # type: ignore[return-value]


def utf8_keys(secret: SecretInput, field: str = "secret") -> tuple[bytes, ...]:
    """HMAC keys as most providers use them: the secret's UTF-8 bytes (bytes are used as given)."""
    return tuple(
        item.encode("utf-8") if isinstance(item, str) else item
        for item in secret_items(secret, field)
    )


def standard_webhooks_keys(secret: SecretInput, field: str = "secret") -> tuple[bytes, ...]:
    """Standard Webhooks keys: a str secret is base64 (``whsec_`` prefix optional), decoded as the
    reference library decodes it; bytes are the raw key."""
    keys = []
    for item in secret_items(secret, field):
        if isinstance(item, bytes):
            keys.append(item)
            continue
        encoded = item.removeprefix(STANDARD_WEBHOOKS_PREFIX)
        try:
            # The reference library pads (base64 may come unpadded) and decodes leniently.
            key = base64.b64decode(encoded + "==")
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                f"{field}: a Standard Webhooks secret is base64, optionally after `whsec_`",
                field=field,
            ) from None
        if not key:
            raise ConfigurationError(f"{field}: the secret decodes to no bytes", field=field)
        keys.append(key)
    return tuple(keys)


def unix_time(now: Instant | None) -> float:
    """`now` as unix seconds: the system clock when None."""
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None or now.utcoffset() is None:
            raise ConfigurationError("now: a datetime must be timezone-aware", field="now")
        return now.timestamp()
    if isinstance(now, bool) or not isinstance(now, int | float):
        raise ConfigurationError("now: unix seconds or an aware datetime", field="now")
    return float(now)


def check_tolerance(tolerance: float | None) -> float | None:
    if tolerance is None:
        return None
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not tolerance > 0:
        raise ConfigurationError(
            "tolerance: a positive number of seconds, or None", field="tolerance"
        )
    return float(tolerance)


def require_text(body: bytes, provider: str) -> None:
    """Refuse a body that is not UTF-8: the provider's library verifies the body as text and fails
    on such bytes, so flowhost gives the same verdict."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse(
            "malformed_body", f"the body is not UTF-8 text, which {provider} signs"
        ) from None


def header_bytes(value: str, name: str) -> bytes:
    """A header value's UTF-8 bytes (what the reference libraries hash and compare)."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse("malformed_header", f"the {name} header is not text") from None


def sign(key: bytes, message: bytes, digest: str = "sha256") -> bytes:
    return hmac.new(key, message, digest).digest()


def any_equal(expected: Sequence[bytes], given: bytes) -> bool:
    """Whether `given` equals one of `expected`, each compared in constant time."""
    found = False
    for candidate in expected:
        found |= hmac.compare_digest(candidate, given)
    return found
