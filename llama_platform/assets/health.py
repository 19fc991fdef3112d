"""Is the deployed endpoint answering *now*? An asset check on deployed_endpoint that probes it.

deployed_endpoint's materialization says a model was deployed and smoke-tested at some point; the
process may since have stopped (`llama-platform run --once` stops it on exit). This check asks the
server, so the UI shows red when nothing listens. `llama-platform run`/`ui` run it after starting
or stopping the endpoint, and the automation sensor re-runs it every few minutes.
"""

from __future__ import annotations

import httpx
from dagster import AssetCheckResult, AssetCheckSeverity, AutomationCondition, MetadataValue, asset_check, define_asset_job, AssetSelection

from llama_platform.resources.serving import LocalEndpointResource


def probe(url: str, model_name: str, timeout: float = 3.0) -> tuple[bool, str]:
    """(answering, what was seen): the server's readiness and the model's (KServe V2 health)."""
    try:
        server = httpx.get(f"{url}/v2/health/ready", timeout=timeout)
        model = httpx.get(f"{url}/v2/models/{model_name}/ready", timeout=timeout)
    except httpx.HTTPError as exc:
        return False, f"nothing answers at {url} ({type(exc).__name__})"
    ok = server.status_code == 200 and model.status_code == 200
    return ok, f"server ready: HTTP {server.status_code}; model {model_name} ready: HTTP {model.status_code}"


@asset_check(
    asset="deployed_endpoint",
    name="endpoint_answers",
    description="the endpoint answers its KServe health probes now (server and model ready)",
    automation_condition=AutomationCondition.cron_tick_passed("*/5 * * * *"),
)
def endpoint_answers(endpoint: LocalEndpointResource) -> AssetCheckResult:
    ok, seen = probe(endpoint.url, endpoint.model_name)
    return AssetCheckResult(
        passed=ok,
        severity=AssetCheckSeverity.ERROR,
        description=seen,
        metadata={"health_url": MetadataValue.url(f"{endpoint.url}/v2/health/ready") if ok else f"{endpoint.url}/v2/health/ready"},
    )


endpoint_health_job = define_asset_job(
    "endpoint_health",
    selection=AssetSelection.checks(endpoint_answers),
    description="Probe the deployed endpoint (the endpoint_answers check).",
    tags={"llama_platform/stage": "deploy"},
)
