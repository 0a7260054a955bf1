"""The generic hmac-sha256 scheme, WebhookAuth configs (validation naming the field), the bearer,
basic, API-key and IP allow-list checks, and secrets kept out of every message and repr."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pickle
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowhost.errors import ConfigurationError, WebhookVerificationError
from flowhost.webhooks import (
    AUTH_SCHEMES,
    HeaderView,
    HmacOptions,
    WebhookAuth,
    WebhookRequest,
    delivery_id,
    redact,
    verify,
)
from tests.support.webhooks import NOW, PROVIDERS

SECRET = "s3cr3t-Value-that-must-not-leak"
BODY = b'{"event":"build.finished","id":42}'


def hex_signature(body: bytes = BODY, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def refusal(call: Any, *args: Any, **kwargs: Any) -> WebhookVerificationError:
    with pytest.raises(WebhookVerificationError) as caught:
        call(*args, **kwargs)
    return caught.value


def generic(headers: dict[str, str], body: bytes = BODY, **kwargs: Any) -> None:
    verify("hmac-sha256", secret=SECRET, headers=headers, body=body, now=NOW, **kwargs)


# --- hmac-sha256 ------------------------------------------------------------------------------


def test_generic_hmac_defaults_to_hex_in_x_signature() -> None:
    generic({"X-Signature": hex_signature()})
    generic({"x-signature": hex_signature().upper()})
    assert refusal(generic, {"X-Signature": hex_signature()}, BODY + b" ").reason == "bad_signature"
    assert refusal(generic, {}).reason == "missing_signature"
    assert (
        refusal(generic, {"X-Signature": "zz" + hex_signature()[2:]}).reason == "malformed_header"
    )
    assert refusal(generic, {"X-Signature": " " + hex_signature()}).reason == "malformed_header"


def test_generic_hmac_prefix_and_base64() -> None:
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    prefixed = HmacOptions(header="X-Hook-Signature", prefix="sha256=")
    generic({"X-Hook-Signature": "sha256=" + digest.hex()}, options=prefixed)
    missing_prefix = refusal(generic, {"X-Hook-Signature": digest.hex()}, options=prefixed)
    assert missing_prefix.reason == "malformed_header"
    as_base64 = HmacOptions(encoding="base64")
    generic({"X-Signature": base64.b64encode(digest).decode()}, options=as_base64)
    generic(
        {"X-Signature": base64.urlsafe_b64encode(digest).decode().rstrip("=")}, options=as_base64
    )
    assert refusal(generic, {"X-Signature": "@@@"}, options=as_base64).reason == "malformed_header"


def test_generic_hmac_with_a_timestamp_header() -> None:
    options = HmacOptions(timestamp_header="X-Timestamp", separator=":")

    def headers(at: int | str, signed_at: int | None = None) -> dict[str, str]:
        message = f"{signed_at if signed_at is not None else at}:".encode() + BODY
        return {"X-Timestamp": str(at), "X-Signature": hex_signature(message)}

    generic(headers(NOW - 300), options=options)
    generic(headers(NOW + 300), options=options)
    for at in (NOW - 301, NOW + 301):
        assert refusal(generic, headers(at), options=options).reason == "timestamp_out_of_tolerance"
    generic(headers(NOW - 10_000), options=options, tolerance=None)
    assert refusal(generic, headers(NOW, NOW - 1), options=options).reason == "bad_signature"
    assert refusal(generic, headers("soon"), options=options).reason == "malformed_header"
    no_timestamp = {"X-Signature": hex_signature(b":" + BODY)}
    assert refusal(generic, no_timestamp, options=options).reason == "missing_timestamp"


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=300), secret=st.binary(min_size=1, max_size=64), flip=st.integers(0))
def test_generic_hmac_signs_the_raw_bytes(body: bytes, secret: bytes, flip: int) -> None:
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    verify("hmac-sha256", secret=secret, headers={"X-Signature": signature}, body=body)
    if body:
        changed = bytearray(body)
        changed[flip % len(body)] ^= 0x01
        with pytest.raises(WebhookVerificationError):
            verify(
                "hmac-sha256",
                secret=secret,
                headers={"X-Signature": signature},
                body=bytes(changed),
            )


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"header": "bad header"}, "hmac.header"),
        ({"encoding": "base32"}, "hmac.encoding"),
        ({"timestamp_header": ""}, "hmac.timestamp_header"),
        ({"prefix": "ü="}, "hmac.prefix"),
    ],
)
def test_hmac_options_are_validated(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        HmacOptions(**options)
    assert caught.value.details["field"] == field


# --- verify()'s own arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        {"scheme": "gitlab"},
        {"secret": ""},
        {"secret": "   "},
        {"secret": []},
        {"secret": [SECRET, 7]},
        {"secret": "not base64 ***", "scheme": "standard-webhooks"},
        {"tolerance": 0},
        {"tolerance": -5},
        {"now": datetime(2024, 1, 1)},  # naive
        {"options": HmacOptions(), "scheme": "github"},
    ],
)
def test_bad_arguments_are_configuration_errors(arguments: dict[str, Any]) -> None:
    call: dict[str, Any] = {
        "scheme": "hmac-sha256",
        "secret": SECRET,
        "headers": {"X-Signature": hex_signature()},
        "body": BODY,
        **arguments,
    }
    scheme = call.pop("scheme")
    with pytest.raises(ConfigurationError):
        verify(scheme, **call)


def test_now_is_unix_seconds_or_an_aware_datetime() -> None:
    slack = PROVIDERS["slack"]
    delivery = slack.sign(BODY, at=NOW)
    for now in (NOW, float(NOW), datetime.fromtimestamp(NOW, UTC)):
        verify("slack", secret=slack.secret, headers=delivery.headers, body=BODY, now=now)
    later = datetime.fromtimestamp(NOW + 301, UTC)
    with pytest.raises(WebhookVerificationError):
        verify("slack", secret=slack.secret, headers=delivery.headers, body=BODY, now=later)


# --- secrets stay out of messages, details and reprs ------------------------------------------


def failures() -> list[tuple[str, WebhookVerificationError, list[str]]]:
    """For every scheme, a refusal of a request signed with SECRET but checked with another
    secret and with SECRET on a changed body, with the strings that must not show."""
    found = []
    for scheme, provider in PROVIDERS.items():
        delivery = provider.sign(BODY, secret=provider.secret)
        for secret, body in ((provider.other_secret, BODY), (provider.secret, BODY + b"!")):
            error = refusal(
                verify,
                scheme,
                secret=secret,
                headers=delivery.headers,
                body=body,
                url=delivery.url,
                now=NOW,
            )
            found.append(
                (
                    scheme,
                    error,
                    [provider.secret, provider.other_secret, *delivery.headers.values()],
                )
            )
    for scheme, header, value in (
        ("github", "X-Hub-Signature-256", "sha256=" + hex_signature()),
        (
            "shopify",
            "X-Shopify-Hmac-Sha256",
            base64.b64encode(bytes.fromhex(hex_signature())).decode(),
        ),
        ("hmac-sha256", "X-Signature", hex_signature()),
    ):
        error = refusal(verify, scheme, secret=SECRET, headers={header: value}, body=BODY + b"!")
        expected = hex_signature(BODY + b"!")
        found.append((scheme, error, [SECRET, value, expected, expected.upper()]))
    return found


def test_no_secret_or_signature_in_errors() -> None:
    seen = set()
    for scheme, error, hidden in failures():
        seen.add(scheme)
        shown = [
            str(error),
            repr(error),
            repr(error.details),
            repr(pickle.loads(pickle.dumps(error))),
        ]
        for value in hidden:
            if len(value) >= 8:
                assert all(value not in text for text in shown), (scheme, error.reason)
    assert seen == {"github", "shopify", "hmac-sha256", *PROVIDERS}


def test_errors_round_trip_through_pickle_with_their_reason() -> None:
    error = WebhookVerificationError("the signature does not match", reason="bad_signature")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.reason, copy.message, copy.status) == (
        WebhookVerificationError,
        "bad_signature",
        error.message,
        401,
    )


def test_reprs_show_no_credentials() -> None:
    auth = WebhookAuth.from_config({"scheme": "bearer", "secret": SECRET})
    request = WebhookRequest(
        {"Authorization": f"Bearer {SECRET}"}, body=SECRET.encode(), url=f"https://h/x?key={SECRET}"
    )
    for shown in (repr(auth), str(auth), repr(request), repr(HeaderView(request.headers))):
        assert SECRET not in shown
        assert hashlib.sha256(SECRET.encode()).hexdigest() not in shown


# --- WebhookAuth configs ----------------------------------------------------------------------

VALID_CONFIGS = [
    {"scheme": "github", "secret": SECRET},
    {"scheme": "stripe", "secret": [SECRET, "whsec_old"], "tolerance": 600},
    {"scheme": "slack", "secret_env": "HOOK_SECRET", "tolerance": None},
    {"scheme": "standard-webhooks", "secret": "whsec_" + base64.b64encode(b"k" * 24).decode()},
    {"scheme": "shopify", "secret_env": ["HOOK_SECRET", "HOOK_SECRET_OLD"]},
    {"scheme": "twilio", "secret": SECRET, "url": "https://public.example.com/hooks/sms"},
    {"scheme": "hmac-sha256", "secret": SECRET, "hmac": {"header": "X-Sig", "prefix": "sha256="}},
    {"scheme": "bearer", "secret": SECRET},
    {"scheme": "basic", "username": "ci", "secret": SECRET},
    {"scheme": "api-key", "secret": SECRET, "query": "key"},
    {"scheme": "none", "allow_ips": ["192.0.2.0/24", "2001:db8::/32"]},
    {
        "scheme": "github",
        "secret": SECRET,
        "allow_ips": ["140.82.112.0/20"],
        "trusted_proxies": ["10.0.0.0/8"],
    },
]
ENVIRON = {"HOOK_SECRET": SECRET, "HOOK_SECRET_OLD": "older-secret"}


@pytest.mark.parametrize("config", VALID_CONFIGS, ids=lambda config: config["scheme"])
def test_valid_configs_parse(config: dict[str, Any]) -> None:
    auth = WebhookAuth.from_config(config, environ=ENVIRON)
    assert auth.scheme == config["scheme"]
    assert SECRET not in repr(auth)


def test_every_scheme_has_a_valid_config_here() -> None:
    assert {config["scheme"] for config in VALID_CONFIGS} == set(AUTH_SCHEMES)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"scheme": "gitlab", "secret": SECRET}, "auth.scheme"),
        ({"secret": SECRET}, "auth.scheme"),
        ({"scheme": "github", "secrte": SECRET}, "auth.secrte"),
        ({"scheme": "github", "secret": SECRET, "tolerance": 60}, "auth.tolerance"),
        ({"scheme": "github"}, "auth.secret"),
        ({"scheme": "github", "secret": SECRET, "secret_env": "HOOK_SECRET"}, "auth.secret"),
        ({"scheme": "github", "secret": ""}, "auth.secret"),
        ({"scheme": "github", "secret_env": "UNSET_VARIABLE"}, "auth.secret_env"),
        ({"scheme": "github", "secret_env": []}, "auth.secret_env"),
        ({"scheme": "stripe", "secret": SECRET, "tolerance": -1}, "auth.tolerance"),
        ({"scheme": "stripe", "secret": SECRET, "tolerance": "5m"}, "auth.tolerance"),
        ({"scheme": "twilio", "secret": SECRET, "url": ""}, "auth.url"),
        ({"scheme": "basic", "secret": SECRET}, "auth.username"),
        ({"scheme": "basic", "secret": SECRET, "username": "a:b"}, "auth.username"),
        ({"scheme": "api-key", "secret": SECRET, "header": "X-Key", "query": "k"}, "auth.header"),
        ({"scheme": "api-key", "secret": SECRET, "header": "X Key"}, "auth.header"),
        (
            {"scheme": "hmac-sha256", "secret": SECRET, "hmac": {"encodign": "hex"}},
            "auth.hmac.encodign",
        ),
        (
            {"scheme": "hmac-sha256", "secret": SECRET, "hmac": {"encoding": "b32"}},
            "auth.hmac.encoding",
        ),
        ({"scheme": "hmac-sha256", "secret": SECRET, "hmac": "hex"}, "auth.hmac"),
        ({"scheme": "none", "allow_ips": ["10.0.0.1/8"]}, "auth.allow_ips"),
        ({"scheme": "none", "allow_ips": ["example.com"]}, "auth.allow_ips"),
        ({"scheme": "none", "allow_ips": []}, "auth.allow_ips"),
        ({"scheme": "none", "allow_ips": "10.0.0.0/8"}, "auth.allow_ips"),
        ({"scheme": "none", "trusted_proxies": ["10.0.0.0/8"]}, "auth.trusted_proxies"),
        (
            {"scheme": "none", "allow_ips": ["::/0"], "trusted_proxies": ["x"]},
            "auth.trusted_proxies",
        ),
        ({"scheme": "none", "secret": SECRET}, "auth.secret"),
    ],
)
def test_config_errors_name_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        WebhookAuth.from_config(config, environ=ENVIRON)
    assert caught.value.details["field"] == field
    assert str(caught.value).startswith(field)
    assert SECRET not in str(caught.value)


def test_a_missing_config_means_no_auth_and_redact_hides_literal_secrets() -> None:
    WebhookAuth.from_config(None).check(WebhookRequest({}))
    assert redact({"scheme": "github", "secret": SECRET}) == {
        "scheme": "github",
        "secret": "[redacted]",
    }
    assert redact({"scheme": "stripe", "secret": ["a", "b"]})["secret"] == ["[redacted]"] * 2
    assert redact({"scheme": "slack", "secret_env": "HOOK_SECRET"})["secret_env"] == "HOOK_SECRET"


def check(config: dict[str, Any], **request: Any) -> str | None:
    """The refusal reason of `request` under `config`, None when it passes."""
    auth = WebhookAuth.from_config(config, environ=ENVIRON)
    try:
        auth.check(WebhookRequest(**{"headers": {}, **request}), now=NOW)
    except WebhookVerificationError as error:
        return error.reason
    return None


def test_signature_schemes_through_a_config() -> None:
    github = {"scheme": "github", "secret_env": ["HOOK_SECRET_OLD", "HOOK_SECRET"]}
    signed = {"X-Hub-Signature-256": "sha256=" + hex_signature()}
    assert check(github, headers=signed, body=BODY) is None
    assert check(github, headers=signed, body=BODY + b" ") == "bad_signature"
    twilio = PROVIDERS["twilio"]
    delivery = twilio.sign(BODY)
    config = {"scheme": "twilio", "secret": twilio.secret}
    # The URL the server saw differs from the public one Twilio signed: the config names it.
    seen = delivery.url.replace("https://hooks.example.com", "http://10.0.0.5:8600")
    assert check(config, headers=delivery.headers, body=BODY, url=seen) == "bad_signature"
    assert (
        check({**config, "url": delivery.url}, headers=delivery.headers, body=BODY, url=seen)
        is None
    )


# --- bearer, basic, API key -------------------------------------------------------------------

BEARER = {"scheme": "bearer", "secret": [SECRET, "next-token"]}


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (f"Bearer {SECRET}", None),
        (f"bearer   {SECRET}  ", None),
        ("Bearer next-token", None),
        (f"Bearer {SECRET}x", "bad_credentials"),
        ("Bearer ", "missing_credentials"),
        (f"Basic {SECRET}", "missing_credentials"),
        (SECRET, "missing_credentials"),
        (None, "missing_credentials"),
    ],
)
def test_bearer(authorization: str | None, reason: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert check(BEARER, headers=headers) == reason


def test_bearer_and_basic_refusals_carry_a_challenge() -> None:
    auth = WebhookAuth.from_config(BEARER)
    error = refusal(auth.check, WebhookRequest({"Authorization": "Bearer nope"}))
    assert (error.status, error.challenge) == (401, "Bearer")
    basic = WebhookAuth.from_config({"scheme": "basic", "username": "ci", "secret": SECRET})
    error = refusal(basic.check, WebhookRequest({}))
    assert error.challenge is not None and error.challenge.startswith("Basic realm=")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (basic("ci", SECRET), None),
        (basic("ci", "pass:with:colons"), None),
        (basic("ci", SECRET + "x"), "bad_credentials"),
        (basic("CI", SECRET), "bad_credentials"),
        (basic("", SECRET), "bad_credentials"),
        ("Basic !!!notbase64", "malformed_header"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), "malformed_header"),
        ("Basic " + base64.b64encode(b"ci:\xff").decode(), "malformed_header"),
        (f"Bearer {SECRET}", "missing_credentials"),
    ],
)
def test_basic(authorization: str, reason: str | None) -> None:
    config = {"scheme": "basic", "username": "ci", "secret": [SECRET, "pass:with:colons"]}
    assert check(config, headers={"Authorization": authorization}) == reason


def test_basic_user_names_are_utf8() -> None:
    config = {"scheme": "basic", "username": "jürgen", "secret": SECRET}
    assert check(config, headers={"Authorization": basic("jürgen", SECRET)}) is None


def test_api_key_in_a_header_or_the_query() -> None:
    in_header = {"scheme": "api-key", "secret": SECRET}
    assert check(in_header, headers={"x-api-key": SECRET}) is None
    assert check(in_header, headers={"X-API-Key": "wrong"}) == "bad_credentials"
    assert check(in_header, headers={"X-Other": SECRET}) == "missing_credentials"
    custom = {**in_header, "header": "X-Hook-Token"}
    assert check(custom, headers={"X-Hook-Token": SECRET}) is None
    in_query = {"scheme": "api-key", "secret": SECRET, "query": "key"}
    assert check(in_query, url=f"https://h/hooks/x?a=1&key={SECRET}") is None
    assert check(in_query, url="https://h/hooks/x?key=wrong") == "bad_credentials"
    assert (
        check(in_query, url="https://h/hooks/x", headers={"X-API-Key": SECRET})
        == "missing_credentials"
    )
    assert check(in_query) == "missing_credentials"


# --- IP allow-list ----------------------------------------------------------------------------

ALLOW = {"scheme": "none", "allow_ips": ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]}


@pytest.mark.parametrize(
    ("peer", "reason"),
    [
        ("192.0.2.10", None),
        ("198.51.100.7", None),
        ("198.51.100.8", "ip_not_allowed"),
        ("2001:db8::1", None),
        ("[2001:db8::1]", None),
        ("2001:db9::1", "ip_not_allowed"),
        ("::ffff:192.0.2.10", None),  # IPv4-mapped: a dual-stack socket's view of an IPv4 peer
        ("fe80::1%eth0", "ip_not_allowed"),
        ("not-an-address", "unknown_client"),
        (None, "unknown_client"),
    ],
)
def test_ip_allow_list(peer: str | None, reason: str | None) -> None:
    assert check(ALLOW, client_ip=peer) == reason


PROXIED = {**ALLOW, "trusted_proxies": ["10.0.0.0/8", "fd00::/8"]}


@pytest.mark.parametrize(
    ("peer", "forwarded", "reason"),
    [
        ("10.0.0.2", ["192.0.2.10"], None),
        ("10.0.0.2", ["192.0.2.10, 10.1.1.1"], None),  # through two trusted proxies
        ("10.0.0.2", ["203.0.113.9"], "ip_not_allowed"),
        # The client claims an allowed address; the proxy appends the real one, which is read.
        ("10.0.0.2", ["192.0.2.10, 203.0.113.9"], "ip_not_allowed"),
        ("10.0.0.2", ["192.0.2.10", "203.0.113.9"], "ip_not_allowed"),  # two header lines
        ("10.0.0.2", ["203.0.113.9", "192.0.2.10"], None),
        ("fd00::5", ["2001:db8::9"], None),
        ("10.0.0.2", [], "ip_not_allowed"),  # the proxy itself is not allowed
        ("10.0.0.2", ["10.9.9.9"], "ip_not_allowed"),  # every hop trusted: the leftmost
        ("10.0.0.2", ["192.0.2.10, garbage"], "malformed_header"),
        # Not from a trusted proxy: the header is the client's word, and is ignored.
        ("203.0.113.9", ["192.0.2.10"], "ip_not_allowed"),
        ("192.0.2.10", ["203.0.113.9"], None),
    ],
)
def test_ip_allow_list_behind_trusted_proxies(
    peer: str, forwarded: list[str], reason: str | None
) -> None:
    headers = [("X-Forwarded-For", line) for line in forwarded]
    assert check(PROXIED, client_ip=peer, headers=headers) == reason


def test_the_address_is_checked_before_the_credentials() -> None:
    config = {"scheme": "bearer", "secret": SECRET, "allow_ips": ["192.0.2.0/24"]}
    auth = WebhookAuth.from_config(config)
    outsider = refusal(
        auth.check, WebhookRequest({"Authorization": f"Bearer {SECRET}"}, client_ip="203.0.113.1")
    )
    assert (outsider.reason, outsider.status) == ("ip_not_allowed", 403)
    assert (
        check(config, client_ip="192.0.2.1", headers={"Authorization": "Bearer x"})
        == "bad_credentials"
    )
    assert (
        check(config, client_ip="192.0.2.1", headers={"Authorization": f"Bearer {SECRET}"}) is None
    )


# --- delivery ids -----------------------------------------------------------------------------


def test_delivery_ids_by_provider() -> None:
    assert delivery_id("github", {"x-github-delivery": "72d3162e"}) == "72d3162e"
    assert delivery_id("standard-webhooks", {"webhook-id": "msg_1"}) == "msg_1"
    assert (
        delivery_id("shopify", {"X-Shopify-Event-Id": "e1", "X-Shopify-Webhook-Id": "w1"}) == "e1"
    )
    assert delivery_id("shopify", {"Shopify-Event-Id": "e2"}) == "e2"
    assert delivery_id("twilio", [("I-Twilio-Idempotency-Token", "t1")]) == "t1"
    assert delivery_id("stripe", {}, {"id": "evt_1", "object": "event"}) == "evt_1"
    assert delivery_id("slack", {}, {"event_id": "Ev01"}) == "Ev01"
    assert delivery_id("stripe", {}, ["not", "a", "mapping"]) is None
    assert delivery_id("github", {"X-GitHub-Delivery": ""}) is None
    assert delivery_id("bearer", {"X-GitHub-Delivery": "x"}) is None


# --- the configs shown in docs/webhooks.md ----------------------------------------------------


class AnyVariable(dict[str, str]):
    def get(self, name: str, default: Any = None) -> str:  # type: ignore[override]
        return "whsec_" + base64.b64encode(b"a documented secret").decode()


def documented_configs() -> list[dict[str, Any]]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    configs = []
    for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL):
        try:
            configs.append(json.loads(block))
        except json.JSONDecodeError:
            configs.extend(json.loads(line) for line in block.splitlines() if line.strip())
    return configs


def test_the_documented_configs_are_valid() -> None:
    configs = documented_configs()
    assert {config["scheme"] for config in configs} == set(AUTH_SCHEMES)
    for config in configs:
        WebhookAuth.from_config(config, environ=AnyVariable())


def test_starlette_headers_keep_their_repeated_lines() -> None:
    from starlette.datastructures import Headers

    raw = [(b"x-forwarded-for", b"192.0.2.10"), (b"x-forwarded-for", b"203.0.113.9")]
    request = WebhookRequest(Headers(raw=raw), client_ip="10.0.0.2")
    error = refusal(WebhookAuth.from_config(PROXIED).check, request)
    assert error.reason == "ip_not_allowed"  # the proxy's line, not the client's, was read
    assert request.header_view.get_all("X-Forwarded-For") == ["192.0.2.10", "203.0.113.9"]
