"""The local model endpoint: a KServe ModelServer process on 127.0.0.1 serving a registered model
(its `champion` alias, or the newest version until the evaluation gate has set one), with the
OpenAI-compatible routes and the maintainers' page (/ui) on the same port, behind the same keys.

The process outlives the Dagster run that deployed it (its own session), so the endpoint stays up
for the user; its PID is kept in a state file so the next deployment, `llama-platform run`'s
shutdown, or a test fixture can stop it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

from dagster import ConfigurableResource

from llama_platform.serving.triage import resolve_registered_model
from llama_platform.services import start_service, stop_pid, wait_http_ok

STATE_FILE = "endpoint.json"


class LocalEndpointResource(ConfigurableResource):
    host: str = "127.0.0.1"
    port: int = 8080
    state_dir: str
    tracking_uri: str
    model_name: str = "llama4-triage"
    # dagster.EnvVar in definitions; handed to the server process through its environment only.
    api_key: Optional[str] = None
    # Feast repo dir: the server looks up the prompts' repo features in its online store.
    feature_repo: Optional[str] = None
    # A keys file (hashed keys and service tokens, serving/auth.py) in addition to api_key.
    keys_file: Optional[str] = None
    batching: bool = True

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _state_path(self) -> Path:
        return Path(self.state_dir) / STATE_FILE

    def stop(self) -> None:
        stop_endpoint(Path(self.state_dir))

    def resolve(self, registered_model: str) -> tuple[str, str]:
        """(model URI, how it was chosen): the `champion` alias, else the newest version."""
        return resolve_registered_model(registered_model, self.tracking_uri)

    def deploy(self, model_uri: str, timeout: float = 180.0, model_source: str = "") -> dict:
        if not self.api_key:
            raise ValueError(
                "the endpoint needs an API key: set LLAMA_PLATFORM_API_KEY "
                "(`llama-platform run` generates one for the local profile)"
            )
        self.stop()
        state_dir = Path(self.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "llama_platform.serving.server",
            "--model-uri", model_uri,
            "--tracking-uri", self.tracking_uri,
            "--name", self.model_name,
            "--host", self.host,
            "--http-port", str(self.port),
        ]
        if self.feature_repo:
            cmd += ["--feature-repo", self.feature_repo]
        if model_source:
            cmd += ["--model-source", model_source]
        if not self.batching:
            cmd.append("--no-batching")
        env = {"LLAMA_PLATFORM_API_KEY": self.api_key}
        if self.keys_file:
            env["LLAMA_PLATFORM_SERVING_KEYS_FILE"] = self.keys_file
        proc = start_service("kserve", cmd, state_dir / "endpoint.log", env=env)
        state = {"pid": proc.pid, "url": self.url, "model_uri": model_uri, "model_name": self.model_name,
                 "model_source": model_source}
        self._state_path().write_text(json.dumps(state))
        try:
            wait_http_ok(f"{self.url}/v2/health/ready", proc, timeout=timeout)
        except Exception:
            proc.stop()
            raise
        return state


def stop_endpoint(state_dir: Path) -> bool:
    """Stop the endpoint recorded in `state_dir`, if any; True when one was stopped."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return False
    state = json.loads(path.read_text())
    stop_pid(int(state["pid"]))
    path.unlink(missing_ok=True)
    return True
