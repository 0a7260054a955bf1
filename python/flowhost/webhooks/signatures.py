"""`verify(scheme, ...)`: one entry point for every signature scheme.

Each scheme is a module of this package; this one turns the caller's secrets into keys the way
the scheme's provider does, reads the clock and dispatches. Secrets may be a list: a request
signed with any of them passes, which is how a secret is rotated (Stripe and Standard Webhooks
also carry several signatures in one request; every given signature is tried with every key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowhost.errors import ConfigurationError
from flowhost.webhooks import (
    generic_hmac,
    github,
    shopify,
    slack,
    standard_webhooks,
    stripe,
    twilio,
)
from flowhost.webhooks.generic_hmac import HmacOptions
from flowhost.webhooks.request import HeaderInput, HeaderView
from flowhost.webhooks.signing import (
    Instant,
    SecretInput,
    SignedRequest,
    check_tolerance,
    standard_webhooks_keys,
    unix_time,
    utf8_keys,
)

KeyReader = Callable[[SecretInput, str], tuple[bytes, ...]]
Verifier = Callable[[SignedRequest, tuple[bytes, ...]], None]


@dataclass(frozen=True, slots=True)
class Scheme:
    name: str
    keys: KeyReader
    verify: Verifier
    timestamped: bool
    """Whether `tolerance` applies (the provider signs a timestamp)."""


SCHEMES: dict[str, Scheme] = {
    scheme.name: scheme
    for scheme in (
        Scheme("github", utf8_keys, github.verify, False),
        Scheme("stripe", utf8_keys, stripe.verify, True),
        Scheme("slack", utf8_keys, slack.verify, True),
        Scheme("standard-webhooks", standard_webhooks_keys, standard_webhooks.verify, True),
        Scheme("shopify", utf8_keys, shopify.verify, False),
        Scheme("twilio", utf8_keys, twilio.verify, False),
        # With its default options; `verify_with_keys` passes the caller's.
        Scheme("hmac-sha256", utf8_keys, generic_hmac.verify_default, True),
    )
}
"""The signature schemes by name."""


def scheme_named(name: str) -> Scheme:
    scheme = SCHEMES.get(name) if isinstance(name, str) else None
    if scheme is None:
        raise ConfigurationError(
            f"scheme: {name!r} is not one of {', '.join(sorted(SCHEMES))}", field="scheme"
        )
    return scheme


def verify_with_keys(
    scheme: Scheme,
    keys: tuple[bytes, ...],
    request: SignedRequest,
    options: HmacOptions | None = None,
) -> None:
    """Verify with keys already read from the secrets (`WebhookAuth` reads them once)."""
    if options is None:
        scheme.verify(request, keys)
    elif scheme.name == "hmac-sha256":
        generic_hmac.verify(request, keys, options)
    else:
        raise ConfigurationError(f"options: only hmac-sha256 takes options, not {scheme.name}")


def verify(
    scheme: str,
    *,
    secret: SecretInput,
    headers: HeaderInput | HeaderView,
    body: bytes,
    url: str | None = None,
    now: Instant | None = None,
    tolerance: float | None = 300,
    options: HmacOptions | None = None,
) -> None:
    """Check that a webhook request was signed by the holder of `secret`, or raise.

    - `scheme`: ``github``, ``stripe``, ``slack``, ``standard-webhooks``, ``shopify``,
      ``twilio`` or ``hmac-sha256``.
    - `secret`: str or bytes, or a list of them while rotating (any one may have signed).
      Standard Webhooks secrets are ``whsec_<base64>`` strings (bytes are the raw key); every
      other scheme keys its HMAC with the secret's UTF-8 bytes.
    - `headers`: a mapping or (name, value) pairs, names in any case.
    - `body`: the raw body bytes, exactly as received.
    - `url`: the full URL the sender requested; required for ``twilio``.
    - `now`: the clock (unix seconds or an aware datetime) for the timestamp checks; the system
      clock when None.
    - `tolerance`: seconds a signed timestamp may differ from `now` (``stripe``: only its age);
      None turns the check off. Ignored by the schemes that sign no timestamp.
    - `options`: the `HmacOptions` of ``hmac-sha256`` (defaults: hex in ``X-Signature``).

    Raises `WebhookVerificationError` (its `reason` says why) when the request fails, and
    `ConfigurationError` when the arguments themselves are wrong (an unknown scheme, an empty
    secret, no `url` for Twilio).
    """
    chosen = scheme_named(scheme)
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("body: the raw request body as bytes")
    request = SignedRequest(
        headers=HeaderView(headers),
        body=bytes(body),
        now=unix_time(now),
        tolerance=check_tolerance(tolerance),
        url=url,
    )
    verify_with_keys(chosen, chosen.keys(secret, "secret"), request, options)
