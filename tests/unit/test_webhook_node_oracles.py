"""flowhost.webhooks.verify for GitHub and Shopify against their official JS verifiers.

Neither publishes a Python verifier (the `ShopifyAPI` package checks OAuth query strings only),
so the oracles are `@octokit/webhooks-methods` (``verifyWithFallback``) and `@shopify/shopify-api`
(``shopify.webhooks.validate``), run once over a batch by `node tests/oracles/webhooks/verify.mjs`.
The named cases assert the expected verdict for both sides; the drawn cases (seeded) compare the
two verdicts on random bodies, headers and secrets.

`make install` installs the packages; without node or them the test is skipped with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import shutil
import subprocess
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import pytest

from flowhost.errors import WebhookVerificationError
from flowhost.webhooks import verify

ORACLES = Path(__file__).resolve().parents[1] / "oracles" / "webhooks"
SECRET = "It's a Secret to Everybody"
OTHER = "another webhook secret"
BODY = '{"action":"opened","number":1,"title":"Grüße ✓"}'.encode()
DRAWN = 400

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None
    or not (ORACLES / "node_modules" / "@octokit" / "webhooks-methods").is_dir()
    or not (ORACLES / "node_modules" / "@shopify" / "shopify-api").is_dir(),
    reason="node and tests/oracles/webhooks/node_modules are installed by `make install`",
)


@dataclass(frozen=True)
class Case:
    scheme: str
    headers: dict[str, str]
    body: bytes
    secrets: tuple[str, ...] = (SECRET,)

    def as_json(self) -> dict[str, object]:
        return {
            "scheme": self.scheme,
            "secrets": list(self.secrets),
            "headers": self.headers,
            "body": base64.b64encode(self.body).decode(),
        }


def ours(case: Case) -> bool:
    try:
        verify(case.scheme, secret=list(case.secrets), headers=case.headers, body=case.body)
    except WebhookVerificationError:
        return False
    return True


def digest(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def github(body: bytes = BODY, secret: str = SECRET, **changes: object) -> Case:
    signature = "sha256=" + digest(secret, body).hex()
    return replace(Case("github", {"X-Hub-Signature-256": signature}, body), **changes)  # type: ignore[arg-type]


SHOPIFY_HEADERS = {
    "Topic": "orders/create",
    "Shop-Domain": "flowhost-test.myshopify.com",
    "API-Version": "2025-01",
    "Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
}


def shopify(
    body: bytes = BODY, secret: str = SECRET, prefix: str = "X-Shopify-", **changes: object
) -> Case:
    headers = {prefix + name: value for name, value in SHOPIFY_HEADERS.items()}
    headers[prefix + "Hmac-Sha256"] = base64.b64encode(digest(secret, body)).decode()
    if prefix == "Shopify-":
        headers["Shopify-Event-Id"] = "98880550-7158-44d4-b7cd-2c97c8a091b5"
    return replace(Case("shopify", headers, body), **changes)  # type: ignore[arg-type]


def without(case: Case, name: str) -> Case:
    return replace(case, headers={k: v for k, v in case.headers.items() if k != name})


def with_header(case: Case, name: str, value: str) -> Case:
    return replace(case, headers={**case.headers, name: value})


GITHUB_SIGNATURE = github().headers["X-Hub-Signature-256"]
NAMED: dict[str, tuple[Case, bool]] = {
    "github_valid": (github(), True),
    "github_tampered_body": (replace(github(), body=BODY + b"\n"), False),
    "github_tampered_signature": (
        with_header(
            github(),
            "X-Hub-Signature-256",
            GITHUB_SIGNATURE[:-1] + ("1" if GITHUB_SIGNATURE.endswith("0") else "0"),
        ),
        False,
    ),
    "github_uppercase_hex": (
        with_header(github(), "X-Hub-Signature-256", "sha256=" + GITHUB_SIGNATURE[7:].upper()),
        False,
    ),
    "github_no_prefix": (with_header(github(), "X-Hub-Signature-256", GITHUB_SIGNATURE[7:]), False),
    "github_sha1": (
        with_header(
            github(),
            "X-Hub-Signature-256",
            "sha1=" + hmac.new(SECRET.encode(), BODY, "sha1").hexdigest(),
        ),
        False,
    ),
    "github_wrong_secret": (github(secrets=(OTHER,)), False),
    "github_rotated_secret": (github(secrets=(OTHER, SECRET)), True),
    "github_missing_signature": (without(github(), "X-Hub-Signature-256"), False),
    "github_empty_signature": (with_header(github(), "X-Hub-Signature-256", ""), False),
    "github_empty_body": (github(body=b""), False),
    "github_non_utf8_body": (github(body=b'{"a": "\xff"}'), False),
    "github_lowercase_header_name": (
        replace(github(), headers={"x-hub-signature-256": GITHUB_SIGNATURE}),
        True,
    ),
    "shopify_valid": (shopify(), True),
    "shopify_tampered_body": (replace(shopify(), body=BODY + b" "), False),
    "shopify_wrong_secret": (shopify(secrets=(OTHER,)), False),
    "shopify_rotated_secret": (shopify(secrets=(OTHER, SECRET)), True),
    "shopify_unpadded_base64": (
        with_header(
            shopify(),
            "X-Shopify-Hmac-Sha256",
            shopify().headers["X-Shopify-Hmac-Sha256"].rstrip("="),
        ),
        False,
    ),
    "shopify_hex_digest": (
        with_header(shopify(), "X-Shopify-Hmac-Sha256", digest(SECRET, BODY).hex()),
        False,
    ),
    "shopify_missing_hmac": (without(shopify(), "X-Shopify-Hmac-Sha256"), False),
    "shopify_missing_topic": (without(shopify(), "X-Shopify-Topic"), False),
    "shopify_missing_domain": (without(shopify(), "X-Shopify-Shop-Domain"), False),
    "shopify_missing_api_version": (without(shopify(), "X-Shopify-API-Version"), False),
    "shopify_missing_webhook_id": (without(shopify(), "X-Shopify-Webhook-Id"), False),
    "shopify_empty_topic": (with_header(shopify(), "X-Shopify-Topic", ""), False),
    "shopify_empty_body": (shopify(body=b""), False),
    "shopify_non_utf8_body": (shopify(body=b"\xc3\x28"), False),
    "shopify_events_valid": (shopify(prefix="Shopify-"), True),
    "shopify_events_missing_event_id": (
        without(shopify(prefix="Shopify-"), "Shopify-Event-Id"),
        False,
    ),
    "shopify_events_hmac_with_legacy_headers": (
        with_header(
            shopify(),
            "Shopify-Hmac-Sha256",
            shopify().headers["X-Shopify-Hmac-Sha256"],
        ),
        False,
    ),
    "shopify_legacy_hmac_wrong_events_hmac_right": (
        with_header(
            with_header(shopify(prefix="Shopify-"), "X-Shopify-Hmac-Sha256", "bm9wZQ=="),
            "X-Shopify-Topic",
            "orders/create",
        ),
        True,
    ),
}


def drawn_cases() -> list[Case]:
    chooser = random.Random(7)

    def body() -> bytes:
        kind = chooser.randrange(5)
        if kind == 0:
            return b""
        if kind == 1:
            return bytes(chooser.randrange(256) for _ in range(chooser.randrange(1, 60)))
        if kind == 2:
            return "".join(chr(chooser.randrange(32, 0x2FFF)) for _ in range(40)).encode()
        return json.dumps({"n": chooser.random(), "s": "é" * chooser.randrange(3)}).encode()

    cases = []
    for _ in range(DRAWN):
        signed_body, secret = body(), chooser.choice([SECRET, OTHER, "ü-secret"])
        scheme = chooser.choice(["github", "shopify"])
        if scheme == "github":
            case = github(signed_body, secret)
        else:
            case = shopify(signed_body, secret, chooser.choice(["X-Shopify-", "Shopify-"]))
        change = chooser.randrange(6)
        if change == 1:
            case = replace(case, body=case.body + b"x")
        elif change == 2:
            name = chooser.choice(sorted(case.headers))
            case = without(case, name)
        elif change == 3:
            name = chooser.choice(sorted(case.headers))
            value = case.headers[name]
            cut = chooser.randrange(len(value) + 1)
            case = with_header(case, name, value[:cut] + chooser.choice(["", "=", "a", " "]))
        secrets = chooser.choice([(SECRET,), (OTHER, SECRET), ("ü-secret",), (OTHER,)])
        cases.append(replace(case, secrets=secrets))
    return cases


@cache
def node_verdicts() -> dict[int, bool]:
    cases = [case for case, _ in NAMED.values()] + drawn_cases()
    completed = subprocess.run(
        ["node", "verify.mjs"],
        cwd=ORACLES,
        input=json.dumps([case.as_json() for case in cases]),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    verdicts = json.loads(completed.stdout)
    assert len(verdicts) == len(cases)
    return dict(enumerate(verdicts))


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_cases_match_the_official_library(name: str) -> None:
    case, valid = NAMED[name]
    index = list(NAMED).index(name)
    assert node_verdicts()[index] is valid, "the official library's verdict"
    assert ours(case) is valid, "flowhost's verdict"


def test_drawn_cases_match_the_official_library() -> None:
    verdicts = node_verdicts()
    offset = len(NAMED)
    disagreements = []
    accepted = {"github": 0, "shopify": 0}
    for index, case in enumerate(drawn_cases()):
        official = verdicts[offset + index]
        accepted[case.scheme] += official
        if ours(case) != official:
            disagreements.append((case, official))
    assert disagreements == []
    # Both verdicts occur for both schemes, so agreement is not agreement on "no".
    assert all(0 < count < DRAWN / 2 for count in accepted.values()), accepted
