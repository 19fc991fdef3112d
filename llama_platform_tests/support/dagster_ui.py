"""The real Dagster webserver (`dagster dev`) on 127.0.0.1, for browser tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from llama_platform.services import ServiceProcess, free_port, start_service, wait_http_ok

REPO_ROOT = Path(__file__).resolve().parents[2]


def start_dagster_dev(home: Path, env: dict[str, str]) -> ServiceProcess:
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    proc = start_service(
        "dagster-dev",
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(REPO_ROOT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        home / "dagster_dev.log",
        env={**env, "DAGSTER_HOME": str(dagster_home)},
        cwd=REPO_ROOT,
    )
    proc.url = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{proc.url}/server_info", proc, timeout=180)
    return proc


CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
