"""Validate CRD-kind objects offline: against official SDK models where they exist, else against the
CRD's openAPIV3Schema (vendored under schemas/, see its README).

The OpenAPI-generated SDKs (kubernetes, kserve) ignore unknown fields when deserialising, and the
Kubeflow Trainer pydantic models drop them, so "it loads" proves little. `strict_openapi` walks a
dict against a generated model's declared attributes and types and reports every unknown field
and wrong type; the pydantic check compares a round trip with the input (anything dropped or
changed is a field the API does not have).
"""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import kserve.models
import kubernetes.client.models
import yaml
from kubeflow_trainer_api import models as trainer_models

SCHEMAS = Path(__file__).resolve().parent / "schemas"

_PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}
# Kinds of the platform's CRDs -> how they are validated.
JSON_SCHEMAS = {
    ("cert-manager.io/v1", "Certificate"): "certificate.yaml",
    ("external-secrets.io/v1", "ExternalSecret"): "externalsecret.yaml",
    ("external-secrets.io/v1", "SecretStore"): "secretstore.yaml",
    ("mlops.seldon.io/v1alpha1", "Server"): "seldon-server.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.yaml",
}
KSERVE_MODELS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
TRAINER_MODELS = {
    ("trainer.kubeflow.org/v1alpha1", "TrainingRuntime"): trainer_models.TrainerV1alpha1TrainingRuntime,
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"): trainer_models.TrainerV1alpha1TrainJob,
}


def _model_class(name: str):
    for module in (kserve.models, kubernetes.client.models):
        if hasattr(module, name):
            return getattr(module, name)
    raise KeyError(f"no generated model named {name}")


def strict_openapi(value, type_name: str, path: str = "") -> list[str]:
    """Errors for `value` read as the OpenAPI-generated type `type_name` (e.g. 'list[V1Container]')."""
    if value is None:
        return []
    if m := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [e for i, item in enumerate(value) for e in strict_openapi(item, m.group(1), f"{path}[{i}]")]
    if m := re.fullmatch(r"dict[(\[]str, (.+)[)\]]", type_name):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        return [e for k, v in value.items() for e in strict_openapi(v, m.group(1), f"{path}.{k}")]
    if type_name == "object":
        return []
    if type_name in _PRIMITIVES:
        ok = isinstance(value, _PRIMITIVES[type_name]) and not (type_name != "bool" and isinstance(value, bool))
        return [] if ok else [f"{path}: expected {type_name}, got {type(value).__name__}"]
    if type_name == "datetime":
        return [] if isinstance(value, str) else [f"{path}: expected a timestamp"]
    cls = _model_class(type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({type_name})"]
    json_to_attr = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    errors = []
    for key, item in value.items():
        if key not in json_to_attr:
            errors.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        errors += strict_openapi(item, cls.openapi_types[json_to_attr[key]], f"{path}.{key}")
    return errors


def _pydantic_roundtrip(obj: dict, model) -> list[str]:
    try:
        back = model.from_dict(obj).to_dict()
    except Exception as exc:  # pydantic's ValidationError names the bad field
        return [str(exc)]
    return _diff(obj, back, "")


def _diff(want, got, path: str) -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        return [e for k in want for e in (
            [f"{path}.{k}: not in the API (dropped by the model)"] if k not in got else _diff(want[k], got[k], f"{path}.{k}"))]
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [e for i, (a, b) in enumerate(zip(want, got)) for e in _diff(a, b, f"{path}[{i}]")]
    return [] if want == got else [f"{path}: {want!r} read back as {got!r}"]


def crd_errors(obj: dict) -> list[str]:
    """Schema errors of one CRD-kind object; KeyError when the kind has no validator."""
    key = (obj["apiVersion"], obj["kind"])
    if key in JSON_SCHEMAS:
        schema = yaml.safe_load((SCHEMAS / JSON_SCHEMAS[key]).read_text())
        validator = jsonschema.Draft7Validator(schema)
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
        if obj["kind"] == "Server" and "podSpec" in obj.get("spec", {}):
            # Seldon's PodSpec is the core one with containers optional.
            errors += strict_openapi(obj["spec"]["podSpec"], "V1PodSpec", "spec.podSpec")
        return errors
    if key in KSERVE_MODELS:
        return strict_openapi(obj, KSERVE_MODELS[key])
    if key in TRAINER_MODELS:
        return _pydantic_roundtrip(obj, TRAINER_MODELS[key])
    raise KeyError(f"no validator for {key}")
