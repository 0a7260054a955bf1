"""flowhost.webhooks.verify against the providers' official Python libraries.

Requests are signed by the provider's library (tests/support/webhooks.py) and judged by both
`verify` and the library's own verifier, the clock pinned: `stripe` (WebhookSignature),
`slack_sdk` (SignatureVerifier), `standardwebhooks` (Webhook) and `twilio` (RequestValidator).
Every case asserts the expected verdict for both, so a case cannot pass by both failing; the
hypothesis tests then compare the two verdicts on drawn bodies and drawn (often malformed)
headers. GitHub and Shopify have no official Python verifier: test_webhook_node_oracles.py.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator

from tests.support.webhooks import (
    NOW,
    PROVIDERS,
    TOLERANCE,
    Delivery,
    Provider,
    TwilioProvider,
    hmac_hex,
    our_reason,
    ours,
)

BODY = '{"id":"evt_1","type":"payment.succeeded","amount":1250,"note":"café ✓"}'.encode()
SCHEMES = sorted(PROVIDERS)
TIMESTAMPED = ["slack", "standard-webhooks", "stripe"]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flip_first(value: str, after: str = "") -> str:
    """`value` with the first character after the `after` prefix changed."""
    start = value.index(after) + len(after) if after else 0
    changed = "B" if value[start] != "B" else "C"
    return value[:start] + changed + value[start + 1 :]


SIGNATURE_PREFIX = {"stripe": "v1=", "slack": "v0=", "standard-webhooks": "v1,", "twilio": ""}


def tampered_signature(provider: Provider, delivery: Delivery) -> Delivery:
    name = provider.signature_header
    value = flip_first(delivery.headers[name], SIGNATURE_PREFIX[provider.scheme])
    return delivery.with_header(name, value)


# kind -> how to build the delivery from a provider; expected verdict and flowhost reason per
# scheme ("*" for every scheme not named).
Build = Callable[[Provider], Delivery]
CASES: dict[str, tuple[Build, dict[str, tuple[bool, str | None]]]] = {
    "valid": (lambda p: p.sign(BODY), {"*": (True, None)}),
    "tampered_body": (
        lambda p: replace(p.sign(BODY), body=BODY + b" "),
        {"*": (False, "bad_signature"), "twilio": (False, "bad_body_hash")},
    ),
    "tampered_signature": (
        lambda p: tampered_signature(p, p.sign(BODY)),
        {"*": (False, "bad_signature")},
    ),
    "wrong_secret": (
        lambda p: replace(p.sign(BODY), secret=p.other_secret),
        {"*": (False, "bad_signature")},
    ),
    "stale_timestamp": (
        lambda p: p.sign(BODY, at=NOW - TOLERANCE - 1),
        {"*": (False, "timestamp_out_of_tolerance"), "twilio": (True, None)},
    ),
    "oldest_accepted_timestamp": (
        lambda p: p.sign(BODY, at=NOW - TOLERANCE),
        {"*": (True, None)},
    ),
    "future_timestamp": (
        # Stripe's library checks only the age of `t`.
        lambda p: p.sign(BODY, at=NOW + TOLERANCE + 1),
        {
            "*": (False, "timestamp_out_of_tolerance"),
            "stripe": (True, None),
            "twilio": (True, None),
        },
    ),
    "latest_accepted_timestamp": (
        lambda p: p.sign(BODY, at=NOW + TOLERANCE),
        {"*": (True, None)},
    ),
    "missing_signature": (
        lambda p: p.sign(BODY).without(p.signature_header),
        {"*": (False, "missing_signature")},
    ),
    "empty_signature": (
        lambda p: p.sign(BODY).with_header(p.signature_header, ""),
        {
            "*": (False, "missing_signature"),
            "slack": (False, "bad_signature"),
            "twilio": (False, "bad_signature"),
        },
    ),
    "malformed_signature": (
        lambda p: p.sign(BODY).with_header(p.signature_header, "garbage"),
        {
            "*": (False, "bad_signature"),
            "stripe": (False, "malformed_header"),
            "standard-webhooks": (False, "malformed_header"),
        },
    ),
    "missing_timestamp": (
        lambda p: p.sign(BODY).without(p.timestamp_header or ""),
        {
            "*": (False, "missing_timestamp"),
            "stripe": (True, None),  # its timestamp is inside Stripe-Signature
            "twilio": (True, None),
        },
    ),
    "malformed_timestamp": (
        lambda p: p.sign(BODY).with_header(p.timestamp_header or "Unused", "soon"),
        {"*": (False, "malformed_header"), "stripe": (True, None), "twilio": (True, None)},
    ),
    "non_utf8_body": (
        lambda p: p.sign(b'{"name": "\xff\xfe"}'),
        {"*": (False, "malformed_body")},
    ),
    "empty_body": (lambda p: p.sign(b""), {"*": (True, None)}),
}


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("scheme", SCHEMES)
def test_case_verdicts_match_the_official_library(scheme: str, kind: str) -> None:
    provider = PROVIDERS[scheme]
    build, expected = CASES[kind]
    valid, reason = expected.get(scheme, expected["*"])
    delivery = build(provider)
    assert provider.official(delivery) is valid, "the official library's verdict"
    assert ours(scheme, delivery) is valid, "flowhost's verdict"
    assert our_reason(scheme, delivery) == reason


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_secret_being_rotated_accepts_both_signers(scheme: str) -> None:
    provider = PROVIDERS[scheme]
    for signer in (provider.secret, provider.other_secret):
        delivery = provider.sign(BODY, secret=signer)
        assert provider.official(delivery)
        assert ours(scheme, replace(delivery, secret=[provider.other_secret, provider.secret]))
    stranger = replace(provider.sign(BODY), secret=[provider.other_secret])
    assert not ours(scheme, stranger) and not provider.official(stranger)


BODIES = st.one_of(st.binary(max_size=200), st.text(max_size=100).map(str.encode))
MUTATIONS: dict[str, Callable[[Provider, Delivery], Delivery]] = {
    "none": lambda provider, delivery: delivery,
    "body": lambda provider, delivery: replace(delivery, body=delivery.body + b"!"),
    "signature": tampered_signature,
    "secret": lambda provider, delivery: replace(delivery, secret=provider.other_secret),
    "no_signature": lambda provider, delivery: delivery.without(provider.signature_header),
}


@FAST
@given(
    body=BODIES,
    mutation=st.sampled_from(sorted(MUTATIONS)),
    at=st.integers(NOW - 2 * TOLERANCE, NOW + 2 * TOLERANCE),
    scheme=st.sampled_from(SCHEMES),
)
def test_drawn_bodies_get_the_official_verdict(
    body: bytes, mutation: str, at: int, scheme: str
) -> None:
    """Any body, signed at any time around now, then changed or not."""
    provider = PROVIDERS[scheme]
    delivery = MUTATIONS[mutation](provider, provider.sign(body, at=at))
    verdict = provider.official(delivery)
    assert ours(scheme, delivery) == verdict
    if verdict:
        assert mutation == "none"
        assert scheme == "twilio" or at >= NOW - TOLERANCE


# --- Stripe-Signature headers drawn from good, odd and broken items -----------------------------

STRIPE = PROVIDERS["stripe"]


def stripe_items(at: int) -> list[str]:
    good = hmac_hex(STRIPE.secret.encode(), b"%d." % at + BODY)
    other = hmac_hex(b"another", b"%d." % at + BODY)
    return [
        f"t={at}",
        f"t= {at}",
        f"t=+{at}",
        f"t=0{at}",
        f"t={at}=junk",
        "t=",
        "t",
        "t=soon",
        f"v1={good}",
        f"v1={good.upper()}",
        f"v1={good}=tail",
        f"v1={other}",
        "v1=",
        "v1",
        "v1=é",
        f" v1={good}",
        f"v0={good}",
        "x=y",
        "",
    ]


@FAST
@given(data=st.data(), at=st.sampled_from([NOW, NOW - 299, NOW - 400, NOW + 400]))
def test_drawn_stripe_headers_get_the_official_verdict(data: st.DataObject, at: int) -> None:
    items = data.draw(st.lists(st.sampled_from(stripe_items(at)), max_size=5))
    delivery = Delivery({STRIPE.signature_header: ",".join(items)}, BODY, secret=STRIPE.secret)
    assert ours("stripe", delivery) == STRIPE.official(delivery)


def test_stripe_sends_one_v1_per_secret_while_rolling() -> None:
    new = hmac_hex(b"whsec_new", b"%d." % NOW + BODY)
    old = hmac_hex(STRIPE.secret.encode(), b"%d." % NOW + BODY)
    delivery = Delivery(
        {STRIPE.signature_header: f"t={NOW},v1={new},v1={old}"}, BODY, secret=STRIPE.secret
    )
    assert STRIPE.official(delivery) and ours("stripe", delivery)


# --- Slack timestamps as sent, signed over exactly that text ------------------------------------

SLACK = PROVIDERS["slack"]
SLACK_TIMESTAMPS = [
    str(NOW),
    f" {NOW}",
    f"+{NOW}",
    f"{NOW} ",
    f"0{NOW}",
    f"{NOW}.0",
    "",
    "-0",
    "soon",
]


@FAST
@given(
    timestamp=st.one_of(st.sampled_from(SLACK_TIMESTAMPS), st.text(max_size=12)),
    signed=st.booleans(),
)
def test_drawn_slack_timestamps_get_the_official_verdict(timestamp: str, signed: bool) -> None:
    signature = SignatureVerifier(SLACK.secret).generate_signature(
        timestamp=timestamp if signed else str(NOW), body=BODY.decode()
    )
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature or ""}
    delivery = Delivery(headers, BODY, secret=SLACK.secret)
    assert ours("slack", delivery) == SLACK.official(delivery)


# --- Standard Webhooks: timestamps read as floats, signature lists with odd entries --------------

STANDARD = PROVIDERS["standard-webhooks"]
STANDARD_TIMESTAMPS = [
    str(NOW),
    f"{NOW}.9",
    f"{NOW}e0",
    f" {NOW} ",
    f"{NOW - 300}",
    f"{NOW + 300}.5",
    f"{NOW - 300}.5",
    "1_700_000_000",
    "nan",
    "inf",
    "1e400",
    "-1",
    "0x10",
    "",
]


def standard_entries(timestamp: str) -> list[str]:
    webhook = Webhook(STANDARD.secret)
    try:
        signed_at = datetime.fromtimestamp(float(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        signed_at = datetime.fromtimestamp(NOW, UTC)
    good = webhook.sign("msg_1", signed_at, BODY.decode()).split(",", 1)[1]
    other = base64.b64encode(hashlib.sha256(b"not it").digest()).decode()
    return [
        f"v1,{good}",
        f"v1,{good.rstrip('=')}",
        f"v1,{other}",
        f"v2,{good}",
        f"v1a,{good}",
        "v1",
        "v1,a,b",
        "v1,!!!!",
        "v1,é",
        "",
    ]


@FAST
@given(data=st.data(), timestamp=st.sampled_from(STANDARD_TIMESTAMPS))
def test_drawn_standard_webhooks_headers_get_the_official_verdict(
    data: st.DataObject, timestamp: str
) -> None:
    entries = data.draw(st.lists(st.sampled_from(standard_entries(timestamp)), max_size=4))
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": timestamp,
        "webhook-signature": " ".join(entries),
    }
    delivery = Delivery(headers, BODY, secret=STANDARD.secret)
    assert ours("standard-webhooks", delivery) == STANDARD.official(delivery)


def test_standard_webhooks_bytes_secret_is_the_raw_key() -> None:
    key = b"\x00raw key bytes\xff"
    signature = Webhook(key).sign("msg_1", datetime.fromtimestamp(NOW, UTC), BODY.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": signature}
    delivery = Delivery(headers, BODY, secret=key)
    assert STANDARD.official(delivery) and ours("standard-webhooks", delivery)
    unprefixed = replace(delivery, secret=base64.b64encode(key).decode())
    assert STANDARD.official(unprefixed) and ours("standard-webhooks", unprefixed)


# --- Twilio: forms, bodySHA256, ports, algorithms ------------------------------------------------

TWILIO: TwilioProvider = PROVIDERS["twilio"]  # type: ignore[assignment]
PAIRS = [("Body", "Hello ✓"), ("From", "+15551234567"), ("To", "+15557654321"), ("NumMedia", "0")]


def twilio_cases() -> dict[str, tuple[Delivery, bool]]:
    form = TWILIO.sign_form(PAIRS)
    with_port = TWILIO.url.replace(".com/", ".com:443/")
    sha256_settings = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    sha256_signature = RequestValidator(TWILIO.secret).compute_signature(
        TWILIO.url, {name: value for name, value in PAIRS}, algorithm="HMAC_SHA256"
    )
    return {
        "form": (form, True),
        "form_reordered": (replace(form, body=b"&".join(reversed(form.body.split(b"&")))), True),
        "form_parameter_dropped": (replace(form, body=form.body.rsplit(b"&", 1)[0]), False),
        "form_parameter_repeated": (replace(form, body=form.body + b"&NumMedia=0"), True),
        "form_parameter_added": (replace(form, body=form.body + b"&NumMedia=1"), False),
        "form_blank_parameter": (replace(form, body=form.body + b"&Extra="), False),
        "form_charset": (form.with_header("Content-Type", TWILIO.form + "; charset=utf-8"), True),
        "url_with_default_port": (replace(form, url=with_port), True),
        "signed_with_default_port": (
            replace(TWILIO.sign_form(PAIRS, url=with_port), url=TWILIO.url),
            True,
        ),
        # Twilio's library also tries the URL without its port, whatever the port.
        "url_with_other_port": (
            replace(form, url=TWILIO.url.replace(".com/", ".com:8443/")),
            True,
        ),
        "url_other_query": (replace(form, url=TWILIO.url.replace("acme", "evil")), False),
        "url_other_scheme": (replace(form, url=TWILIO.url.replace("https:", "http:")), False),
        "form_read_as_json": (form.with_header("Content-Type", "application/json"), False),
        "sha256_settings": (
            form.with_header("X-Twilio-Signature", sha256_signature).with_header(
                "X-Twilio-Webhooks-Signature-Settings", sha256_settings
            ),
            True,
        ),
        "sha1_signature_sha256_settings": (
            form.with_header("X-Twilio-Webhooks-Signature-Settings", sha256_settings),
            False,
        ),
        "unknown_algorithm": (
            form.with_header("X-Twilio-Webhooks-Signature-Settings", "algorithm=HMAC_MD5"),
            False,
        ),
        "json_without_body_hash": (
            replace(TWILIO.sign(BODY), url=TWILIO.url),
            False,
        ),
        "empty_body_no_hash": (
            Delivery(
                {
                    "X-Twilio-Signature": RequestValidator(TWILIO.secret).compute_signature(
                        TWILIO.url, {}
                    )
                },
                b"",
                TWILIO.url,
                secret=TWILIO.secret,
            ),
            True,
        ),
        "non_utf8_form": (replace(form, body=form.body + b"&X=\xff"), False),
    }


@pytest.mark.parametrize("case", sorted(twilio_cases()))
def test_twilio_cases_match_the_official_library(case: str) -> None:
    delivery, valid = twilio_cases()[case]
    assert TWILIO.official(delivery) is valid
    assert ours("twilio", delivery) is valid


NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8)


@FAST
@given(
    pairs=st.lists(st.tuples(NAMES, st.text(max_size=10)), max_size=6),
    change=st.sampled_from(["none", "reorder", "drop", "port", "secret"]),
)
def test_drawn_twilio_forms_get_the_official_verdict(
    pairs: list[tuple[str, str]], change: str
) -> None:
    delivery = TWILIO.sign_form(pairs)
    if change == "reorder":
        delivery = replace(delivery, body=b"&".join(reversed(delivery.body.split(b"&"))))
    elif change == "drop":
        delivery = replace(delivery, body=delivery.body.split(b"&", 1)[-1])
    elif change == "port":
        delivery = replace(delivery, url=TWILIO.url.replace(".com/", ".com:443/"))
    elif change == "secret":
        delivery = replace(delivery, secret=TWILIO.other_secret)
    verdict = TWILIO.official(delivery)
    assert ours("twilio", delivery) == verdict
    if change in ("none", "reorder", "port"):
        assert verdict


def test_twilio_needs_the_url() -> None:
    from flowhost.errors import ConfigurationError
    from flowhost.webhooks import verify

    delivery = TWILIO.sign_form(PAIRS)
    with pytest.raises(ConfigurationError, match="url"):
        verify("twilio", secret=TWILIO.secret, headers=delivery.headers, body=delivery.body)


def test_headers_match_in_any_case_and_as_pairs() -> None:
    delivery = PROVIDERS["slack"].sign(BODY)
    shouted: Any = {name.upper(): value for name, value in delivery.headers.items()}
    assert ours("slack", replace(delivery, headers=shouted))
    pairs = [(name.lower().encode(), value.encode()) for name, value in delivery.headers.items()]
    assert ours("slack", replace(delivery, headers=pairs))  # type: ignore[arg-type]
