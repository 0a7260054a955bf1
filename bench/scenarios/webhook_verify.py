"""flowhost.webhooks.verify vs each provider's official Python verifier, on a 1 KiB JSON body.

One valid signed request per scheme (signed by the provider's library with the current time),
verified in a loop for a fixed time budget by each side. Both sides are checked to accept the
request before timing. GitHub has no official Python verifier: its anchor is the snippet of
GitHub's documentation (`hmac.new` + `hmac.compare_digest` over the body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import stripe
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator

from bench.harness import Context, Measurement
from flowhost.webhooks import verify

NAME = "webhook_verify"
DESCRIPTION = "webhooks.verify per scheme vs the provider's official Python verifier (1 KiB body)"

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY_TEXT = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": "x" * 960})
BODY = BODY_TEXT.encode()
TWILIO_URL = "https://hooks.example.com/hooks/sms?bodySHA256=" + hashlib.sha256(BODY).hexdigest()

Check = Callable[[], object]


def pairs(now: int) -> dict[str, tuple[Check, Check]]:
    """scheme -> (flowhost's check, the anchor's check) of one valid request."""
    stripe_header = {
        "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
            BODY_TEXT, SECRET, now
        )
    }
    slack = SignatureVerifier(SECRET)
    slack_headers = {
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": slack.generate_signature(timestamp=str(now), body=BODY_TEXT) or "",
    }
    webhook = Webhook(SECRET)
    standard_headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": webhook.sign("msg_1", datetime.fromtimestamp(now, UTC), BODY_TEXT),
    }
    twilio = RequestValidator(SECRET)
    twilio_headers = {"X-Twilio-Signature": twilio.compute_signature(TWILIO_URL, {})}
    github_signature = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()

    def github_docs_snippet() -> bool:
        expected = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, github_signature)

    def ours(scheme: str, headers: dict[str, str], url: str | None = None) -> Check:
        return lambda: verify(scheme, secret=SECRET, headers=headers, body=BODY, url=url)

    return {
        "stripe": (
            ours("stripe", stripe_header),
            lambda: stripe.WebhookSignature.verify_header(
                BODY, stripe_header["Stripe-Signature"], SECRET, 300
            ),
        ),
        "slack": (
            ours("slack", slack_headers),
            lambda: slack.is_valid_request(BODY, slack_headers),
        ),
        "standard_webhooks": (
            ours("standard-webhooks", standard_headers),
            lambda: webhook.verify(BODY, standard_headers, json_parse=False) or True,
        ),
        "twilio": (
            ours("twilio", twilio_headers, TWILIO_URL),
            lambda: twilio.validate(TWILIO_URL, BODY_TEXT, twilio_headers["X-Twilio-Signature"]),
        ),
        "github": (ours("github", {"X-Hub-Signature-256": github_signature}), github_docs_snippet),
    }


def rate(check: Check, budget: float) -> float:
    done = 0
    started = time.perf_counter()
    while True:
        for _ in range(200):
            check()
        done += 200
        elapsed = time.perf_counter() - started
        if elapsed >= budget:
            return done / elapsed


async def run(ctx: Context) -> list[Measurement]:
    budget = 0.1 if ctx.quick else 0.5
    measurements = []
    for scheme, (flowhost, anchor) in pairs(int(time.time())).items():
        flowhost()  # raises if flowhost refuses the request
        if anchor() is not True:
            raise RuntimeError(f"the {scheme} anchor refuses the request")
        ours, theirs = rate(flowhost, budget), rate(anchor, budget)
        ctx.log(f"{scheme}: {ours:,.0f} vs {theirs:,.0f} verifications/s")
        measurements.append(
            Measurement(
                f"verifications_per_s_{scheme}",
                ours,
                "verifications/s",
                anchor="github_docs_snippet" if scheme == "github" else f"{scheme}_library",
                anchor_value=theirs,
            )
        )
    return measurements
