"""A small client for the deployed endpoint (the deployed_endpoint asset's smoke test)."""

from __future__ import annotations

from typing import Any, Sequence

import httpx


def smoke_request(
    url: str,
    api_key: str | None,
    model_name: str,
    instances: Sequence[dict[str, Any]],
    timeout: float = 60.0,
) -> tuple[int, Any]:
    """POST a V1 predict request; return (HTTP status, parsed JSON or the raw text if not JSON)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.post(
        f"{url.rstrip('/')}/v1/models/{model_name}:predict",
        json={"instances": list(instances)},
        headers=headers,
        timeout=timeout,
    )
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return response.status_code, body
