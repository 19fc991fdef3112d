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


class EndpointResource(ConfigurableResource):
    """What deployed_endpoint needs of an endpoint, in either profile."""

    model_name: str = "llama4-triage"
    api_key: Optional[str] = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def resolve(self, registered_model: str) -> tuple[str, str]:
        raise NotImplementedError

    def deploy(self, model_uri: str, timeout: float = 180.0, model_source: str = "") -> dict:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class LocalEndpointResource(EndpointResource):
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


class KServeEndpointResource(EndpointResource):
    """The k8s profile's endpoint: the champion as a KServe InferenceService, rolled out by canary.

    `deploy` applies the candidate at `canary_percent`, judges it from Prometheus (the predictor's
    own triage_* metrics for the canary revision) with the pure state machine in k8s/serving.py,
    and applies the outcome: promoted to 100%, or rolled back to the champion.
    """

    namespace: str = "serving"
    model_name: str = "llama4-triage"
    tracking_uri: str
    # The InferenceService's URL through the ingress, and the Prometheus that scrapes the predictors.
    public_url: str
    prometheus_url: str
    # A service token with the predict scope (dagster.EnvVar), for the smoke test.
    api_key: Optional[str] = None
    canary_percent: int = 10
    min_requests: int = 200
    max_error_rate: float = 0.01
    max_p95_latency_s: float = 1.0
    check_interval_s: float = 60.0
    max_checks: int = 30
    gpus: int = 1
    min_replicas: int = 1
    max_replicas: int = 4
    # None: in-cluster config; else a kubeconfig file (as KubernetesResource).
    kubeconfig_file: Optional[str] = None

    @property
    def url(self) -> str:
        return self.public_url.rstrip("/")

    def resolve(self, registered_model: str) -> tuple[str, str]:
        return resolve_registered_model(registered_model, self.tracking_uri)

    def stop(self) -> None:
        """Nothing to stop: the cluster keeps serving the champion."""

    def _api(self):
        from kubernetes import client, config

        if self.kubeconfig_file is None:  # in-cluster: the Dagster run pod's service account
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.CustomObjectsApi(client.ApiClient(configuration))
        return client.CustomObjectsApi(config.new_client_from_config(config_file=self.kubeconfig_file))

    def _current(self, api) -> Optional[dict]:
        from kubernetes.client.exceptions import ApiException

        try:
            return api.get_namespaced_custom_object("serving.kserve.io", "v1beta1", self.namespace,
                                                    "inferenceservices", self.model_name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _apply(self, api, obj: dict) -> None:
        # Server-side apply: the fields we own are set, others (status, defaults) left alone.
        api.patch_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", self.namespace, "inferenceservices", self.model_name, obj,
            field_manager="llama-platform", force=True,
            _content_type="application/apply-patch+yaml",
        )

    def _query(self, promql: str) -> float:
        import math

        import httpx

        r = httpx.get(f"{self.prometheus_url.rstrip('/')}/api/v1/query", params={"query": promql}, timeout=30)
        r.raise_for_status()
        result = r.json()["data"]["result"]
        value = float(result[0]["value"][1]) if result else 0.0
        return 0.0 if math.isnan(value) else value

    def deploy(self, model_uri: str, timeout: float = 0.0, model_source: str = "") -> dict:
        import time

        from llama_platform.k8s.serving import (
            CanaryMetrics,
            CanaryPolicy,
            CanaryState,
            ServingShape,
            begin,
            canary_queries,
            run_canary,
        )
        from llama_platform.serving.triage import model_dir_uri

        storage_uri = model_dir_uri(model_uri, self.tracking_uri)
        api = self._api()
        current = self._current(api)
        champion = ((current or {}).get("spec", {}).get("predictor", {}).get("model", {}) or {}).get("storageUri")
        policy = CanaryPolicy(canary_percent=self.canary_percent, min_requests=self.min_requests,
                              max_error_rate=self.max_error_rate, max_p95_latency_s=self.max_p95_latency_s)
        shape = ServingShape(gpus=self.gpus, min_replicas=self.min_replicas, max_replicas=self.max_replicas)
        state = begin(champion, storage_uri, policy) if champion else CanaryState("stable", storage_uri,
                                                                                 reason="first deployment")

        def observe(_state: CanaryState) -> CanaryMetrics:
            status = (self._current(api) or {}).get("status", {}).get("components", {}).get("predictor", {})
            canary_rev, champion_rev = status.get("latestCreatedRevision"), status.get("previousRolledoutRevision")
            q = canary_queries(canary_rev, self.namespace)
            p95_champion = self._query(canary_queries(champion_rev, self.namespace)["p95"]) if champion_rev else None
            return CanaryMetrics(int(self._query(q["requests"])), int(self._query(q["errors"])),
                                 self._query(q["p95"]), p95_champion or None)

        final = run_canary(state, lambda obj: self._apply(api, obj), observe, time.sleep, policy, shape,
                           self.check_interval_s, self.max_checks)
        return {"url": self.url, "model_uri": model_uri, "storage_uri": storage_uri, "model_source": model_source,
                "canary_phase": final.phase, "canary_reason": final.reason}
