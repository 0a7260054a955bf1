"""Placeholders in an HTTP action's URL, headers, query, auth fields and text body, and the
redaction of what they expanded to. Pure: no I/O.

`{run_id}`, `{flow}`, `{step}`, `{attempt}`, `{idempotency_key}`, `{timestamp}` (ISO 8601,
UTC), `{uuid}` (one per request: every field of a request sees the same), `{env:NAME}` (a
variable the step's function declares in `env`) and `{secret:NAME}` (a host variable named in
the `http_secrets` setting). Other text in braces is left as it is (a JSON text body has
plenty), and so is anything in a `json=` body: data from outside never expands a placeholder.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

PLACEHOLDER = re.compile(
    r"\{(run_id|flow|step|attempt|idempotency_key|timestamp|uuid"
    r"|(env|secret):([A-Za-z_][A-Za-z0-9_]*))\}"
)
# What stands in a record for a value that must not be seen.
REDACTED = "[redacted]"


@dataclasses.dataclass(frozen=True, slots=True)
class Placeholders:
    """The values one request's placeholders expand to. `environ`: the host's variables;
    `declared_env`: those the step may read; `secrets`: those `{secret:NAME}` may read."""

    values: Mapping[str, str]
    environ: Mapping[str, str]
    declared_env: frozenset[str]
    secrets: frozenset[str]


class Expander:
    """Expands placeholders and remembers every secret it put in, for `scrub`."""

    def __init__(self, placeholders: Placeholders) -> None:
        self._placeholders = placeholders
        self._secrets: dict[str, str] = {}  # value -> what stands for it in records

    def expand(self, text: str, where: str) -> str:
        """`text` with its placeholders replaced; ValueError names a variable that may not
        be read here (`where`: the field, for the message)."""
        return PLACEHOLDER.sub(lambda match: self._value(match, where), text)

    def hide(self, value: str, label: str = REDACTED) -> None:
        """Treat `value` as a secret in everything scrubbed from now on."""
        if value:
            self._secrets.setdefault(value, label)

    def scrub(self, text: str) -> str:
        """`text` with every secret value replaced (longest first: one value may hold
        another)."""
        for value in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(value, self._secrets[value])
        return text

    def _value(self, match: re.Match[str], where: str) -> str:
        kind, name = match.group(2), match.group(3)
        places = self._placeholders
        if kind is None:
            return places.values[match.group(1)]
        if kind == "env":
            if name not in places.declared_env:
                raise ValueError(
                    f"{where}: {{env:{name}}} is not a variable the step's function declares in env"
                )
            value = places.environ.get(name)
            if value is None:
                raise ValueError(f"{where}: the environment variable {name} is not set")
            return value
        if name not in places.secrets:
            raise ValueError(
                f"{where}: {{secret:{name}}} is not in the host's http_secrets setting"
            )
        value = places.environ.get(name)
        if value is None:
            raise ValueError(f"{where}: the secret {name} is not set in the host's environment")
        self.hide(value, f"[secret:{name}]")
        return value
