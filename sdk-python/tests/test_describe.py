"""Discovery output: steps with file and line; a broken file is a problem, the rest still load."""

from __future__ import annotations

from pathlib import Path

from flowhost_worker.describe import describe


def test_describe_reports_steps_and_problems(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(
        "from flowhost_worker import step\n\n"
        "@step(flow='f', entry=True)\n"
        "async def first(data, ctx):\n"
        "    return data\n"
    )
    (tmp_path / "broken.py").write_text("x = 1\ndef oops(:\n")
    (tmp_path / "raises.py").write_text("import os\n\nraise RuntimeError('no config')\n")
    (tmp_path / "badconfig.py").write_text(
        "from flowhost_worker import step\n\n"
        "@step(flow='f', attempts=0, entry=True)\n"
        "async def bad(data, ctx):\n"
        "    return data\n"
    )
    (tmp_path / "_private.py").write_text("raise SystemExit('never imported')\n")
    result = describe(tmp_path)
    assert [(s["function"], s["line"], s["config"]["name"]) for s in result["steps"]] == [
        ("first", 3, "first")
    ]
    problems = {Path(p["file"]).name: (p["line"], p["message"]) for p in result["problems"]}
    assert problems["broken.py"][0] == 2 and problems["broken.py"][1].startswith("SyntaxError")
    assert problems["raises.py"] == (3, "RuntimeError: no config")
    assert problems["badconfig.py"][0] == 3
    assert "attempts must be at least 1" in problems["badconfig.py"][1]
    assert "_private.py" not in problems
