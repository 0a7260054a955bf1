"""Parts of the CLI with no process around them: colour choice, finding the bench checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowhost.cli.benchmarks import find_checkout
from flowhost.cli.common import colour_choice
from flowhost.errors import ConfigurationError
from tests.conftest import REPO


def test_colour_choice() -> None:
    assert colour_choice(True, {"NO_COLOR": "1"}) is True  # the flag is explicit
    assert colour_choice(False, {}) is False
    assert colour_choice(None, {"NO_COLOR": "1"}) is False
    assert colour_choice(None, {"NO_COLOR": ""}) is None  # empty: not set (no-color.org)
    assert colour_choice(None, {}) is None  # auto: a terminal


def test_find_checkout(tmp_path: Path) -> None:
    installed = str(tmp_path / "lib" / "python3" / "site-packages" / "flowhost" / "__init__.py")
    assert find_checkout(str(REPO / "python" / "flowhost" / "__init__.py"), tmp_path, {}) == REPO
    assert find_checkout(installed, REPO / "bench" / "scenarios", {}) == REPO
    assert find_checkout(installed, tmp_path, {"FLOWHOST_REPO": str(REPO)}) == REPO
    with pytest.raises(ConfigurationError, match="needs a flowhost source checkout"):
        find_checkout(installed, tmp_path, {"FLOWHOST_REPO": str(tmp_path)})
