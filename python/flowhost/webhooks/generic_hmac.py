"""`hmac-sha256`: a configurable HMAC-SHA256 scheme for senders without a preset.

The sender puts HMAC-SHA256 of the raw body (bytes, any content), keyed with the shared secret,
in one header, hex or base64 encoded, optionally after a prefix such as ``sha256=``. With a
timestamp header, the signed message is ``<timestamp><separator><body>`` and the timestamp
(integer unix seconds) must be within `tolerance` seconds of now, past or future: this is what
makes a captured request useless to replay later.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flowhost.errors import ConfigurationError
from flowhost.webhooks.signing import SignedRequest, any_equal, refuse, sign

TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
UNIX_SECONDS = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True, slots=True)
class HmacOptions:
    """Where an `hmac-sha256` signature is and what it covers.

    - `header`: the header carrying the signature.
    - `encoding`: ``"hex"`` (either case) or ``"base64"`` (standard or URL-safe alphabet,
      padding optional).
    - `prefix`: text before the encoded digest, e.g. ``"sha256="``; matched exactly.
    - `timestamp_header`: a header with the integer unix seconds the sender signed along with the
      body; None when the sender signs the body alone.
    - `separator`: what joins the timestamp and the body in the signed message.
    """

    header: str = "X-Signature"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    separator: str = "."

    def __post_init__(self) -> None:
        for name in ("header", "timestamp_header"):
            value = getattr(self, name)
            if (value is not None or name == "header") and not (
                isinstance(value, str) and TOKEN.match(value)
            ):
                raise ConfigurationError(f"hmac.{name}: a header name", field=f"hmac.{name}")
        if self.encoding not in ("hex", "base64"):
            raise ConfigurationError('hmac.encoding: "hex" or "base64"', field="hmac.encoding")
        for name in ("prefix", "separator"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.isascii():
                raise ConfigurationError(f"hmac.{name}: ASCII text", field=f"hmac.{name}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HmacOptions:
        """Options from a trigger's ``auth.hmac`` mapping (the field names above)."""
        if not isinstance(config, Mapping):
            raise ConfigurationError("hmac: a mapping of options", field="hmac")
        unknown = sorted(set(config) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigurationError(
                f"hmac: unknown option {unknown[0]!r}", field=f"hmac.{unknown[0]}"
            )
        return cls(**config)


DEFAULT_OPTIONS = HmacOptions()


def decode(value: str, encoding: str) -> bytes | None:
    try:
        if encoding == "hex":
            return binascii.unhexlify(value)
        # Padding is optional, and the URL-safe alphabet is read too: senders differ on both.
        padded = (value + "=" * (-len(value) % 4)).encode("ascii")
        altchars = b"-_" if "-" in value or "_" in value else None
        return base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return None


def signed_message(request: SignedRequest, options: HmacOptions) -> bytes:
    if options.timestamp_header is None:
        return request.body
    timestamp = request.headers.present(options.timestamp_header)
    if timestamp is None:
        raise refuse("missing_timestamp", f"the {options.timestamp_header} header is missing")
    if not UNIX_SECONDS.match(timestamp):
        raise refuse(
            "malformed_header", f"the {options.timestamp_header} header is not unix seconds"
        )
    if request.tolerance is not None and abs(request.now - int(timestamp)) > request.tolerance:
        raise refuse(
            "timestamp_out_of_tolerance",
            f"the {options.timestamp_header} is more than {request.tolerance:g} seconds from now",
        )
    return timestamp.encode() + options.separator.encode() + request.body


def verify(request: SignedRequest, keys: tuple[bytes, ...], options: HmacOptions) -> None:
    value = request.headers.present(options.header)
    if value is None:
        raise refuse("missing_signature", f"the {options.header} header is missing")
    if not value.startswith(options.prefix):
        raise refuse("malformed_header", f"the {options.header} header lacks its prefix")
    given = decode(value[len(options.prefix) :], options.encoding)
    if given is None:
        raise refuse("malformed_header", f"the {options.header} header is not {options.encoding}")
    message = signed_message(request, options)
    if not any_equal([sign(key, message) for key in keys], given):
        raise refuse("bad_signature", f"the {options.header} header does not match the body")


def verify_default(request: SignedRequest, keys: tuple[bytes, ...]) -> None:
    """`verify` with the default options: hex HMAC-SHA256 of the body in ``X-Signature``."""
    verify(request, keys, DEFAULT_OPTIONS)
