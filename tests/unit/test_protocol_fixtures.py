"""The committed golden frames are what their generator writes (so they never drift silently)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "protocol"


def test_frames_json_is_up_to_date_with_generate_py() -> None:
    spec = importlib.util.spec_from_file_location("generate_frames", FIXTURES / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert (FIXTURES / "frames.json").read_text(encoding="utf-8") == generate.render()


def test_every_error_code_of_the_doc_is_in_the_python_sdk_and_no_other() -> None:
    from flowhost_worker.protocol import ErrorCode

    doc = (FIXTURES.parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    documented = {int(code) for code in re.findall(r"^\| (-32\d{3}) \|", doc, re.MULTILINE)}
    assert documented == {int(code) for code in ErrorCode}
