"""Signed webhook deliveries made by the providers' official Python libraries, and those libraries'
verdicts on a delivery, for the differential tests of flowhost.webhooks.

Each provider signs with its own library where it has a signing function, and judges with its
own verifier, the clock pinned to the test's `now` (Stripe's and Standard Webhooks' verifiers
read the system clock; Slack's takes a clock). A verifier that raises anything is a rejection:
that is what a caller of the library sees.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

import pytest
import standardwebhooks.webhooks
import stripe
import stripe._webhook
from slack_sdk.signature import Clock, SignatureVerifier
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator, get_signature_algorithm

from flowhost.errors import WebhookVerificationError
from flowhost.webhooks import verify

NOW = 1_700_000_000
TOLERANCE = 300
STANDARD_SECRET = "whsec_" + base64.b64encode(b"flowhost-standard-webhooks-key!!").decode()
OTHER_STANDARD_SECRET = "whsec_" + base64.b64encode(b"another-standard-webhooks-key!!!").decode()


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    url: str | None = None
    secret: Any = None
    """The secret the receiver checks with (the signer's unless a case changes it)."""
    options: dict[str, Any] = field(default_factory=dict)

    def without(self, name: str) -> Delivery:
        return replace(self, headers={k: v for k, v in self.headers.items() if k != name})

    def with_header(self, name: str, value: str) -> Delivery:
        return replace(self, headers={**self.headers, name: value})


def ours(scheme: str, delivery: Delivery, now: float = NOW) -> bool:
    """flowhost's verdict; a ConfigurationError is a bug in the test and propagates."""
    try:
        verify(
            scheme,
            secret=delivery.secret,
            headers=delivery.headers,
            body=delivery.body,
            url=delivery.url,
            now=now,
            tolerance=TOLERANCE,
        )
    except WebhookVerificationError:
        return False
    return True


def our_reason(scheme: str, delivery: Delivery, now: float = NOW) -> str | None:
    try:
        verify(
            scheme,
            secret=delivery.secret,
            headers=delivery.headers,
            body=delivery.body,
            url=delivery.url,
            now=now,
            tolerance=TOLERANCE,
        )
    except WebhookVerificationError as error:
        return error.reason
    return None


def text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def hmac_hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self.fixed = now

    def now(self) -> float:
        return self.fixed


@contextmanager
def pinned_clock(now: float) -> Iterator[None]:
    """Stripe's `time.time()` and Standard Webhooks' `datetime.now()` answer `now`."""

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> FrozenDatetime:  # type: ignore[override]
            return cls.fromtimestamp(now, tz or UTC)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stripe._webhook, "time", SimpleNamespace(time=lambda: float(now)))
        patch.setattr(standardwebhooks.webhooks, "datetime", FrozenDatetime)
        yield


class Provider:
    scheme: ClassVar[str]
    signature_header: ClassVar[str]
    timestamp_header: ClassVar[str | None] = None
    secret: ClassVar[Any]
    other_secret: ClassVar[Any]

    def sign(self, body: bytes, at: int = NOW, secret: Any = None) -> Delivery:
        raise NotImplementedError

    def official(self, delivery: Delivery, now: float = NOW) -> bool:
        try:
            with pinned_clock(now):
                return bool(self.judge(delivery))
        except Exception:
            return False

    def judge(self, delivery: Delivery) -> Any:
        raise NotImplementedError


class StripeProvider(Provider):
    scheme = "stripe"
    signature_header = "Stripe-Signature"
    secret = "whsec_flowhost_stripe_test_secret"
    other_secret = "whsec_another_stripe_secret"

    def sign(self, body: bytes, at: int = NOW, secret: Any = None) -> Delivery:
        secret = secret or self.secret
        payload = text(body)
        if payload is None:  # the library signs text only; the same formula over the bytes
            header = f"t={at},v1={hmac_hex(secret.encode(), b'%d.' % at + body)}"
        else:
            header = stripe.WebhookSignature.generate_signature_header(payload, secret, at)
        return Delivery({self.signature_header: header}, body, secret=secret)

    def judge(self, delivery: Delivery) -> Any:
        return stripe.WebhookSignature.verify_header(
            delivery.body, delivery.headers.get(self.signature_header), delivery.secret, TOLERANCE
        )


class SlackProvider(Provider):
    scheme = "slack"
    signature_header = "X-Slack-Signature"
    timestamp_header = "X-Slack-Request-Timestamp"
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    other_secret = "another-slack-signing-secret"

    def sign(self, body: bytes, at: int = NOW, secret: Any = None) -> Delivery:
        secret = secret or self.secret
        payload = text(body)
        if payload is None:
            signature = "v0=" + hmac_hex(secret.encode(), b"v0:%d:" % at + body)
        else:
            signature = SignatureVerifier(secret).generate_signature(
                timestamp=str(at), body=payload
            )
        headers = {self.timestamp_header: str(at), self.signature_header: signature or ""}
        return Delivery(headers, body, secret=secret)

    def official(self, delivery: Delivery, now: float = NOW) -> bool:
        try:
            verifier = SignatureVerifier(delivery.secret, clock=FixedClock(now))
            return verifier.is_valid_request(delivery.body, delivery.headers)
        except Exception:
            return False


class StandardWebhooksProvider(Provider):
    scheme = "standard-webhooks"
    signature_header = "webhook-signature"
    timestamp_header = "webhook-timestamp"
    secret = STANDARD_SECRET
    other_secret = OTHER_STANDARD_SECRET

    def sign(self, body: bytes, at: int = NOW, secret: Any = None) -> Delivery:
        secret = secret or self.secret
        payload = text(body)
        webhook = Webhook(secret)
        if payload is None:
            digest = hmac.new(webhook._whsecret, b"msg_1.%d." % at + body, "sha256").digest()
            signature = "v1," + base64.b64encode(digest).decode()
        else:
            signature = webhook.sign("msg_1", datetime.fromtimestamp(at, UTC), payload)
        headers = {
            "webhook-id": "msg_1",
            self.timestamp_header: str(at),
            self.signature_header: signature,
        }
        return Delivery(headers, body, secret=secret)

    def judge(self, delivery: Delivery) -> Any:
        Webhook(delivery.secret).verify(delivery.body, delivery.headers, json_parse=False)
        return True


class MultiValues(dict[str, list[str]]):
    """Form parameters as a web framework hands them over (Django's QueryDict `getlist`)."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


def form_parameters(body: bytes) -> MultiValues:
    parameters = MultiValues()
    for name, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
        parameters.setdefault(name, []).append(value)
    return parameters


class TwilioProvider(Provider):
    scheme = "twilio"
    signature_header = "X-Twilio-Signature"
    secret = "12345abcdef-twilio-auth-token"
    other_secret = "another-twilio-auth-token"
    url = "https://hooks.example.com/hooks/twilio/sms?tenant=acme"
    form = "application/x-www-form-urlencoded"

    def sign(self, body: bytes, at: int = NOW, secret: Any = None) -> Delivery:
        """A body that is not a form: signed through `bodySHA256` in the URL (Twilio's JSON
        webhooks). `at` is unused: Twilio signs no timestamp."""
        secret = secret or self.secret
        url = self.url + "&" + urlencode({"bodySHA256": hashlib.sha256(body).hexdigest()})
        signature = RequestValidator(secret).compute_signature(url, {})
        headers = {self.signature_header: signature, "Content-Type": "application/json"}
        return Delivery(headers, body, url, secret=secret)

    def sign_form(
        self, pairs: list[tuple[str, str]], secret: Any = None, url: str | None = None
    ) -> Delivery:
        """A form POST of `pairs`, signed over the URL and the sorted parameters."""
        secret = secret or self.secret
        url = url or self.url
        body = urlencode(pairs).encode()
        signature = RequestValidator(secret).compute_signature(url, form_parameters(body))
        headers = {self.signature_header: signature, "Content-Type": self.form}
        return Delivery(headers, body, url, secret=secret)

    def judge(self, delivery: Delivery) -> Any:
        headers = {name.lower(): value for name, value in delivery.headers.items()}
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        params: Any = form_parameters(delivery.body) if media == self.form else None
        if params is None:
            params = delivery.body.decode("utf-8")
        algorithm = get_signature_algorithm(headers.get("x-twilio-webhooks-signature-settings"))
        return RequestValidator(delivery.secret).validate(
            delivery.url, params, headers.get("x-twilio-signature"), algorithm
        )


PROVIDERS: dict[str, Provider] = {
    provider.scheme: provider
    for provider in (
        StripeProvider(),
        SlackProvider(),
        StandardWebhooksProvider(),
        TwilioProvider(),
    )
}
