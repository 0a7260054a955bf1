"""`flowhost dev`: embedded Postgres by default, the API with a token it prints, reload on
change, clean stop on Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import stat
from pathlib import Path

import httpx

from tests.support.cli import flowhost, read_until, start_flowhost


def test_dev_on_embedded_postgres_reloads_and_stops_cleanly(
    tmp_path: Path, orders_project: Path
) -> None:
    project = tmp_path / "p"  # short: the embedded server's socket lives under it
    shutil.copytree(orders_project, project, ignore=shutil.ignore_patterns(".flowhost"))
    seen: list[str] = []
    with start_flowhost("dev", str(project), project=project, database_url=None) as dev:
        try:
            api = read_until(dev, "api ready:", seen).split("api ready:")[1].split()[0]
            token = read_until(dev, "api token:", seen).split("api token:")[1].strip()
            dashboard = read_until(dev, "dashboard:", seen).split("dashboard:")[1].strip()
            read_until(dev, "watching", seen)
            assert any("embedded PostgreSQL" in line for line in seen)
            # The API is served at the printed URL (8600 or the next free port), with the
            # printed token, which is kept for the next start (owner-only).
            assert api.startswith("http://127.0.0.1:86") and api.endswith("/api")
            with httpx.Client(timeout=30) as client:
                flows = client.get(f"{api}/flows", headers={"Authorization": f"Bearer {token}"})
                anonymous = client.get(f"{api}/flows")
            assert flows.status_code == 200, flows.text
            assert "orders" in {flow["name"] for flow in flows.json()["items"]}
            assert anonymous.status_code == 401
            # The dashboard's printed URL logs a browser in and sends it on without the token.
            assert dashboard == api.removesuffix("/api") + f"/?token={token}"
            with httpx.Client(timeout=30) as browser:
                login = browser.get(dashboard)
                assert login.status_code == 303 and login.headers["location"] == "/"
                assert browser.get(api.removesuffix("/api") + "/").status_code == 200
            kept = project / ".flowhost" / "api-token"
            assert kept.read_text().strip() == token
            assert stat.S_IMODE(kept.stat().st_mode) == 0o600
            (project / "functions" / "audit.py").write_text(
                "from flowhost_worker import step\n\n"
                "@step(flow='audit', entry=True)\nasync def audit(data, ctx):\n    return 'ok'\n"
            )
            read_until(dev, "flow audit", seen)
            # A second command on the same project joins the running server and host.
            result = flowhost("run", "audit", "--wait", project=project, database_url=None)
            assert result.returncode == 0, result.stderr
            assert "run by a running host" in result.stdout
            assert result.stdout.strip().endswith("completed")
        finally:
            dev.send_signal(signal.SIGINT)
            code = dev.wait(timeout=30)
        rest = dev.stdout.read() if dev.stdout else ""
    assert code == 0, "".join(seen) + rest
    assert "stopped" in rest
    assert not (project / ".flowhost" / "pg" / "postmaster.pid").exists()
