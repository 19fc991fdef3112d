"""Stage 8: deploy the registered model to a KServe ModelServer and smoke-test it."""

import json

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from llama_platform.assets.automation import follow_upstream
from llama_platform.assets.common import code_version_of
from llama_platform.assets.lineage import upstream_metadata
from llama_platform.resources.serving import LocalEndpointResource
from llama_platform.serving.client import smoke_request

SMOKE_INSTANCE = {
    "title": "Crash with TypeError when calling parse() on an empty file",
    "body": "Steps to reproduce: call parse('') -> Traceback (most recent call last): TypeError. Expected an empty result.",
    "repo": "smoke/test",
}


@asset(
    group_name="serving",
    automation_condition=follow_upstream,
    deps=["model_evaluation", "finetuned_checkpoint"],
    description="KServe predictor serving the registered model on 127.0.0.1 behind an API key, smoke-tested.",
    kinds={"kserve"},
    code_version=code_version_of("assets/serving.py", "serving"),
    tags={"stage": "deploy"},
)
def deployed_endpoint(context: AssetExecutionContext, endpoint: LocalEndpointResource) -> MaterializeResult:
    ckpt = upstream_metadata(context, "finetuned_checkpoint")
    model_uri = str(ckpt["model_uri"])
    context.log.info(f"deploying {model_uri} to {endpoint.url}")
    state = endpoint.deploy(model_uri)
    status, body = smoke_request(endpoint.url, endpoint.api_key, endpoint.model_name, [SMOKE_INSTANCE])
    if status != 200:
        endpoint.stop()
        raise Failure(f"smoke request to {endpoint.url} answered {status}: {body}")
    predict_url = f"{endpoint.url}/v1/models/{endpoint.model_name}:predict"
    return MaterializeResult(
        metadata={
            "endpoint_url": MetadataValue.url(predict_url),
            "model_uri": model_uri,
            "pid": state["pid"],
            "smoke_request": MetadataValue.json({"instances": [SMOKE_INSTANCE]}),
            "smoke_status": status,
            "smoke_response": MetadataValue.json(body),
            "auth": "API key: `Authorization: Bearer $LLAMA_PLATFORM_API_KEY` (or X-API-Key)",
            "curl": MetadataValue.md(
                "```\ncurl -H \"Authorization: Bearer $LLAMA_PLATFORM_API_KEY\" "
                f"{predict_url} -d '{json.dumps({'instances': [SMOKE_INSTANCE]})}'\n```"
            ),
        }
    )
