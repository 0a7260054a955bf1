"""GitHub: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the body keyed with the webhook
secret. No timestamp: GitHub signs nothing else (dedupe replays by ``X-GitHub-Delivery``).

The verdict is `@octokit/webhooks-methods` ``verify`` (GitHub's official JS verifier; GitHub
publishes no Python one): the body must be non-empty UTF-8 text, and the header must be exactly
``sha256=`` and the lowercase hex digest. The legacy SHA-1 ``X-Hub-Signature`` is not accepted.
"""

from __future__ import annotations

from hashlib import sha256
from hmac import new as new_hmac

from flowhost.webhooks.signing import (
    SignedRequest,
    any_equal,
    header_bytes,
    refuse,
    require_text,
)

HEADER = "X-Hub-Signature-256"


def verify(request: SignedRequest, keys: tuple[bytes, ...]) -> None:
    signature = request.headers.present(HEADER)
    if signature is None:
        raise refuse("missing_signature", f"the {HEADER} header is missing")
    if not request.body:
        raise refuse("missing_body", "the body is empty; GitHub signs a non-empty body")
    require_text(request.body, "GitHub")
    expected = [
        b"sha256=" + new_hmac(key, request.body, sha256).hexdigest().encode() for key in keys
    ]
    if not any_equal(expected, header_bytes(signature, HEADER)):
        raise refuse("bad_signature", f"the {HEADER} header does not match the body")
