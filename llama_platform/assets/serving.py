"""Stage 8: deploy the champion to a KServe ModelServer and smoke-test it.

Serves the registry alias `champion` (set by the evaluation gate); until one exists, the newest
registered version, and says so in the log and the metadata.
"""

import json

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from llama_platform.assets.automation import follow_upstream
from llama_platform.assets.common import code_version_of
from llama_platform.assets.lineage import upstream_metadata
from llama_platform.resources.serving import EndpointResource
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
    description="KServe predictor serving the champion (V1, V2, OpenAI-compatible, maintainers' page at /ui) "
                "on 127.0.0.1 behind API keys, smoke-tested.",
    kinds={"kserve"},
    code_version=code_version_of("assets/serving.py", "serving"),
    tags={"stage": "deploy"},
)
def deployed_endpoint(context: AssetExecutionContext, endpoint: EndpointResource) -> MaterializeResult:
    ckpt = upstream_metadata(context, "finetuned_checkpoint")
    if ckpt.get("model_name"):
        model_uri, source = endpoint.resolve(str(ckpt["model_name"]))
    else:  # trained without a registry: serve the checkpoint itself
        model_uri, source = str(ckpt["model_uri"]), "the latest finetuned_checkpoint (not registered)"
    context.log.info(f"deploying {model_uri} ({source}) to {endpoint.url}")
    state = endpoint.deploy(model_uri, model_source=source)
    if state.get("canary_phase") == "rolled_back":  # k8s: the champion keeps serving
        raise Failure(f"canary of {model_uri} rolled back: {state['canary_reason']}")
    status, body = smoke_request(endpoint.url, endpoint.api_key, endpoint.model_name, [SMOKE_INSTANCE])
    if status != 200:
        endpoint.stop()
        raise Failure(f"smoke request to {endpoint.url} answered {status}: {body}")
    predict_url = f"{endpoint.url}/v1/models/{endpoint.model_name}:predict"
    return MaterializeResult(
        metadata={
            "endpoint_url": MetadataValue.url(predict_url),
            "model_uri": model_uri,
            "model_source": source,
            "page_url": MetadataValue.url(f"{endpoint.url}/ui"),
            "openai_base_url": f"{endpoint.url}/v1",
            **{k: state[k] for k in ("pid", "storage_uri", "canary_phase", "canary_reason") if k in state},
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
