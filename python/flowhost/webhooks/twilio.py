"""Twilio: ``X-Twilio-Signature: <base64>``, HMAC of the URL Twilio requested plus the POST
parameters, keyed with the account's Auth Token (or a SharedKey secret).

What is signed depends on the body, as in `twilio` (Python) ``RequestValidator.validate``:

- a form body (``application/x-www-form-urlencoded``): the full URL, then for every parameter
  name in sorted order, each of its distinct values in sorted order, appended as ``name + value``;
- any other body: the URL alone, which then must carry ``bodySHA256=<hex SHA-256 of the body>``
  in its query (Twilio adds it for JSON bodies). A non-empty body that is neither a form nor
  covered by ``bodySHA256`` is refused: nothing would vouch for it.

The URL is checked both with and without its port (the default port of its scheme is added when
it has none), as Twilio's library does. The HMAC is SHA-1, or SHA-256 when the request's
``X-Twilio-Webhooks-Signature-Settings`` header says ``algorithm=HMAC_SHA256``. Twilio signs no
timestamp. `url` must be the public URL Twilio was given: behind a proxy it differs from the one
the server sees.
"""

from __future__ import annotations

import base64
import hmac
from hashlib import sha256
from urllib.parse import ParseResult, parse_qs, parse_qsl, urlparse

from flowhost.errors import ConfigurationError
from flowhost.webhooks.signing import (
    SignedRequest,
    any_equal,
    header_bytes,
    refuse,
    require_text,
)

HEADER = "X-Twilio-Signature"
SETTINGS = "X-Twilio-Webhooks-Signature-Settings"
ALGORITHMS = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}
FORM = "application/x-www-form-urlencoded"


def algorithm(settings: str | None) -> str:
    """The digest named by the signature settings header (``key=...,algorithm=HMAC_SHA256``);
    SHA-1 when it names none."""
    for part in (settings or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            digest = ALGORITHMS.get(value.strip().upper())
            if digest is None:
                raise refuse(
                    "malformed_header", f"the {SETTINGS} header names an unknown algorithm"
                )
            return digest
    return "sha1"


def url_variants(url: str) -> list[str]:
    """The URL without its port and with it (the scheme's default port added when absent)."""
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError:
        raise refuse("malformed_url", "the request URL is not a valid URL") from None
    if port:
        without = parsed._replace(netloc=parsed.netloc.rsplit(":", 1)[0])
        return [without.geturl(), parsed.geturl()]
    default = 443 if parsed.scheme == "https" else 80
    return [parsed.geturl(), parsed._replace(netloc=f"{parsed.netloc}:{default}").geturl()]


def is_form(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == FORM


def form_parameters(body: bytes) -> dict[str, set[str]]:
    require_text(body, "Twilio")
    parameters: dict[str, set[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
        parameters.setdefault(name, set()).add(value)
    return parameters


def signed_text(url: str, parameters: dict[str, set[str]]) -> bytes:
    pieces = [url]
    for name in sorted(parameters):
        pieces.extend(name + value for value in sorted(parameters[name]))
    try:
        return "".join(pieces).encode("utf-8")
    except UnicodeEncodeError:
        raise refuse("malformed_url", "the request URL is not text") from None


def body_hash_matches(parsed: ParseResult, body: bytes) -> bool | None:
    """Whether the body's SHA-256 is the URL's ``bodySHA256``; None when the URL has none."""
    declared = parse_qs(parsed.query).get("bodySHA256")
    if declared is None:
        return None
    require_text(body, "Twilio")
    given = declared[0].encode("utf-8", "surrogatepass")
    return hmac.compare_digest(sha256(body).hexdigest().encode(), given)


def verify(request: SignedRequest, keys: tuple[bytes, ...]) -> None:
    if request.url is None:
        raise ConfigurationError(
            "url: Twilio signs the request URL, which is required", field="url"
        )
    signature = request.headers.get(HEADER)
    if signature is None:
        raise refuse("missing_signature", f"the {HEADER} header is missing")
    digest = algorithm(request.headers.get(SETTINGS))
    variants = url_variants(request.url)
    parameters: dict[str, set[str]] = {}
    body_matches: bool | None = None
    if is_form(request.headers.get("content-type")):
        parameters = form_parameters(request.body)
    else:
        body_matches = body_hash_matches(urlparse(request.url), request.body)
        if body_matches is None and request.body:
            raise refuse("unsigned_body", "the body is not a form and the URL has no bodySHA256")
    texts = [signed_text(variant, parameters) for variant in variants]
    expected = [
        base64.b64encode(hmac.new(key, text, digest).digest()) for key in keys for text in texts
    ]
    if not any_equal(expected, header_bytes(signature, HEADER)):
        raise refuse("bad_signature", f"the {HEADER} header does not match the request")
    if body_matches is False:
        raise refuse("bad_body_hash", "the body's SHA-256 is not the URL's bodySHA256")
