"""Start and stop local service processes (replay forge, SeaweedFS, MLflow, KServe, Dagster UI).

Used by the CLI (`make run`) and by test fixtures. Children get default SIGTERM/SIGINT handling
restored and their own process group, because processes here may inherit those signals as
ignored (see FIELD-NOTES) and a server that ignores SIGTERM would outlive its fixture.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _restore_default_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setsid()


@dataclass
class ServiceProcess:
    name: str
    popen: subprocess.Popen
    log_path: Path
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        stop_pid(self.popen.pid, timeout=timeout)
        try:
            self.popen.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group of `pid`, then SIGKILL it if it has not gone after `timeout`."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        # Reap if it is our child, so it doesn't linger as a zombie that killpg still sees.
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_service(
    name: str,
    cmd: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ServiceProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    popen = subprocess.Popen(
        list(cmd),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=str(cwd) if cwd else None,
        preexec_fn=_restore_default_signals,
    )
    log.close()
    return ServiceProcess(name=name, popen=popen, log_path=log_path)


def wait_until(
    check: Callable[[], bool],
    service: ServiceProcess | None = None,
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "service",
) -> None:
    """Poll `check` until it returns True; fail fast with the log tail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service is not None and not service.alive():
            raise RuntimeError(
                f"{what} exited with code {service.popen.returncode} before becoming ready:\n"
                f"{service.log_tail()}"
            )
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet (connection refused, etc.)
            pass
        time.sleep(interval)
    tail = service.log_tail() if service else ""
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s\n{tail}")


def wait_http_ok(
    url: str, service: ServiceProcess | None = None, timeout: float = 60.0, headers: Mapping[str, str] | None = None
) -> None:
    def check() -> bool:
        return httpx.get(url, timeout=2.0, headers=dict(headers or {})).status_code < 500

    wait_until(check, service, timeout=timeout, what=f"{service.name if service else url}")
