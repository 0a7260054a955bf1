"""Stripe: ``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]``.

Each ``v1`` is hex HMAC-SHA256, keyed with the endpoint secret (``whsec_...``, the whole string),
of ``"<t>." + body``. Stripe sends several ``v1`` entries while an endpoint secret is rolled. The
timestamp is only checked for age (``t`` older than `tolerance` fails, a future ``t`` passes), and
only once a signature matched: the order and the header parsing follow `stripe` (Python)
``WebhookSignature.verify_header``, so both give the same verdict on any header.
"""

from __future__ import annotations

from hashlib import sha256
from hmac import new as new_hmac

from flowhost.webhooks.signing import SignedRequest, any_equal, refuse, require_text

HEADER = "Stripe-Signature"


def read_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the v1 signatures, parsed as Stripe's library parses them: items split
    at ``,``, each at its first two ``=``; the first ``t`` is the timestamp (Python's `int`)."""
    try:
        items = [item.split("=", 2) for item in header.split(",")]
        # Every `t` item is read, not just the first: a later bare `t` fails Stripe's parse too.
        timestamp = int([item[1] for item in items if item[0] == "t"][0])  # noqa: RUF015
        signatures = [item[1] for item in items if item[0] == "v1"]
    except (IndexError, ValueError):
        raise refuse(
            "malformed_header", f"the {HEADER} header has no t= timestamp and signatures"
        ) from None
    return timestamp, signatures


def verify(request: SignedRequest, keys: tuple[bytes, ...]) -> None:
    header = request.headers.get(HEADER)
    if not header:
        raise refuse("missing_signature", f"the {HEADER} header is missing")
    timestamp, signatures = read_header(header)
    if not signatures:
        raise refuse("missing_signature", f"the {HEADER} header has no v1 signature")
    require_text(request.body, "Stripe")
    signed = b"%d." % timestamp + request.body
    expected = [new_hmac(key, signed, sha256).hexdigest().encode() for key in keys]
    for signature in signatures:
        if not signature.isascii():
            # Stripe's library fails on such an entry (its compare takes ASCII only), even when a
            # later entry would match.
            raise refuse("malformed_header", f"the {HEADER} header has a non-ASCII signature")
        if any_equal(expected, signature.encode()):
            break
    else:
        raise refuse("bad_signature", f"no v1 signature of the {HEADER} header matches the body")
    if request.tolerance is not None and timestamp < request.now - request.tolerance:
        raise refuse(
            "timestamp_out_of_tolerance",
            f"the signature's timestamp is older than {request.tolerance:g} seconds",
        )
