"""Triggers: what starts flows. For now the index that matches event names to patterns.

``TriggerIndex`` holds patterns of event names (``syntax="event"``: ``order.*``, ``order.#``) or
MQTT topics (``syntax="mqtt"``: ``sport/+``, ``sport/#``), each with the values registered under
it, and returns the values whose patterns match a name. It is built in Rust (``flowhost._core``):
matching walks a trie of segments, so it costs time in proportion to the name's segments, not to
the number of patterns. See ``docs/triggers.md`` for the pattern rules.

Bad patterns raise ``flowhost.errors.PatternError``; names that are empty or contain wildcards
raise ``flowhost.errors.EventNameError`` (both are ``ValueError``s).
"""

from __future__ import annotations

from flowhost._core import TriggerIndex

__all__ = ["TriggerIndex"]
