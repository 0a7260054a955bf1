"""The committed golden frames are what their generator writes (so they never drift silently)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "protocol"


def test_frames_json_is_up_to_date_with_generate_py() -> None:
    spec = importlib.util.spec_from_file_location("generate_frames", FIXTURES / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert (FIXTURES / "frames.json").read_text(encoding="utf-8") == generate.render()
