"""Names of flows, steps and events: one pattern for every place that checks one."""

from __future__ import annotations

import re

# Letters, digits and `_ . : -`; the Node SDK uses the same pattern (NAME_PATTERN in config.js).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]+$")
