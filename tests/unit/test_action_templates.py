"""Placeholders of HTTP actions: what expands, what is refused, and what records never show."""

from __future__ import annotations

import pytest

from flowhost.actions.http import HttpCall
from flowhost.actions.templates import Expander, Placeholders


def expander(**environ: str) -> Expander:
    return Expander(
        Placeholders(
            values={"run_id": "r-1", "uuid": "u-1", "attempt": "2"},
            environ=environ,
            declared_env=frozenset({"REGION"}),
            secrets=frozenset({"TOKEN", "SHORT"}),
        )
    )


def test_placeholders_expand_and_other_braces_stay() -> None:
    found = expander(REGION="eu").expand(
        '{"run": "{run_id}", "n": {attempt}, "x": "{unknown}", "r": "{env:REGION}"}', "body"
    )
    assert found == '{"run": "r-1", "n": 2, "x": "{unknown}", "r": "eu"}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{env:HOME}", "not a variable the step's function declares"),
        ("{env:REGION}", "REGION is not set"),
        ("{secret:OTHER}", "not in the host's http_secrets"),
        ("{secret:TOKEN}", "TOKEN is not set"),
    ],
)
def test_variables_the_step_may_not_read_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expander(HOME="/root", OTHER="x").expand(text, "url")


def test_secrets_are_scrubbed_longest_first() -> None:
    found = expander(TOKEN="abc-long-secret", SHORT="abc")
    sent = found.expand("Bearer {secret:TOKEN} and {secret:SHORT}", "header")
    assert sent == "Bearer abc-long-secret and abc"
    assert found.scrub(sent) == "Bearer [secret:TOKEN] and [secret:SHORT]"
    found.hide("literal-key")
    assert found.scrub("k=literal-key") == "k=[redacted]"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"method": "FETCH", "url": "https://x"}, "method"),
        ({"method": "GET", "url": ""}, "url"),
        ({"method": "GET", "url": "https://x", "timeout": 601}, "timeout"),
        ({"method": "GET", "url": "https://x", "body": {"a": 1}}, "body"),
        (
            {"method": "GET", "url": "https://x", "auth": {"type": "basic", "username": "u"}},
            "password",
        ),
        (
            {
                "method": "GET",
                "url": "https://x",
                "auth": {"type": "api_key", "name": "k", "value": "v", "in": "body"},
            },
            "header or the query",
        ),
        ({"method": "GET", "url": "https://x", "headers": {"a": 1}}, "headers"),
    ],
)
def test_a_child_s_params_are_checked_again_on_the_host(
    params: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        HttpCall.from_params(params)
