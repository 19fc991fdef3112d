"""The triage service every runtime shares: request parsing, repo features, micro-batching, the model.

Pure Python (no KServe, no MLServer, no web framework), so the KServe predictor (predictor.py), the
MLServer runtime (mlserver_runtime.py, run from its own environment) and the OpenAI-compatible routes
all give the same answers from the same code.

Errors: `BadRequest` (the caller's fault: each runtime answers 400 with the message; messages name
the field, never echo the text) and `Overloaded` (the queue is full: 503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from llama_platform.serving import metrics
from llama_platform.training.prompts import format_prompt

log = logging.getLogger(__name__)

MAX_INSTANCES = 64
META_FILE = "triage.json"  # marks a triage model directory (see training/inference.py)
CHAMPION_ALIAS = "champion"


class BadRequest(ValueError):
    """The request is malformed; the message says which field and why."""


class Overloaded(RuntimeError):
    """More work is queued than the server accepts; retry after `retry_after` seconds."""

    def __init__(self, detail: str, retry_after: int = 1):
        super().__init__(detail)
        self.retry_after = retry_after


class LabelModel(Protocol):
    def predict(self, prompts: Sequence[str]) -> list[dict]: ...


# ---------------------------------------------------------------- parsing


def _text(value: Any, name: str, index: int, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"instances[{index}].{name} must be a non-empty string" if required
                         else f"instances[{index}].{name} must be a string")
    return value


def parse_instance(raw: Any, index: int) -> dict:
    if not isinstance(raw, Mapping):
        raise BadRequest(f"instances[{index}] must be an object with title, body and repo")
    features = raw.get("features")
    if features is not None and not isinstance(features, Mapping):
        raise BadRequest(f"instances[{index}].features must be an object of name: value")
    return {
        "title": _text(raw.get("title"), "title", index, required=True),
        "body": _text(raw.get("body"), "body", index, required=False),
        "repo": _text(raw.get("repo"), "repo", index, required=True),
        "features": dict(features) if features else None,
    }


def v1_instances(payload: Any) -> list[dict]:
    """KServe V1: {"instances": [{"title", "body"?, "repo", "features"?}, ...]}."""
    if isinstance(payload, (bytes, str)):
        # KServe hands over the raw body when the content type is not JSON (e.g. curl -d).
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, Mapping) or "instances" not in payload:
        raise BadRequest('expected a JSON object {"instances": [{"title": ..., "body": ..., "repo": ...}]}')
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise BadRequest('"instances" must be a non-empty list')
    return [parse_instance(raw, i) for i, raw in enumerate(instances)]


def strings(values: Sequence[Any], name: str) -> list[str]:
    out = []
    for v in values:
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        if not isinstance(v, str):
            raise BadRequest(f"input {name!r} must hold strings (datatype BYTES)")
        out.append(v)
    return out


def v2_instances(columns: Mapping[str, Sequence[Any]], datatypes: Mapping[str, str]) -> list[dict]:
    """Open Inference Protocol V2: BYTES inputs "title", "repo" and optionally "body", shape [N]."""
    for name, datatype in datatypes.items():
        if datatype != "BYTES":
            raise BadRequest(f"input {name!r} must have datatype BYTES, got {datatype}")
    cols = {name: strings(values, name) for name, values in columns.items()}
    missing = [n for n in ("title", "repo") if n not in cols]
    if missing:
        raise BadRequest(f"missing inputs {missing}: send BYTES inputs 'title', 'repo' and optionally 'body'")
    n = len(cols["title"])
    if n == 0:
        raise BadRequest("inputs are empty")
    cols.setdefault("body", [""] * n)
    lengths = {k: len(cols[k]) for k in ("title", "body", "repo")}
    if len(set(lengths.values())) != 1:
        raise BadRequest(f"inputs 'title', 'body' and 'repo' must have the same length, got {lengths}")
    return [parse_instance({k: cols[k][i] for k in ("title", "body", "repo")}, i) for i in range(n)]


def v2_outputs(results: list[dict]) -> list[dict]:
    """V2 outputs as plain dicts (name, shape, datatype, data); each runtime wraps them in its types."""
    order = list(results[0]["scores"]) if results else []
    scores = [float(r["scores"][label]) for r in results for label in order]
    return [
        {"name": "labels", "shape": [len(results)], "datatype": "BYTES", "data": [json.dumps(r["labels"]) for r in results]},
        {"name": "scores", "shape": [len(results), len(order)], "datatype": "FP32", "data": scores},
        {"name": "label_order", "shape": [len(order)], "datatype": "BYTES", "data": order},
    ]


# ---------------------------------------------------------------- model sources


def find_model_dir(root: Path) -> Path:
    """The one directory under `root` (itself included) holding a triage model's triage.json."""
    found = sorted({p.parent for p in Path(root).rglob(META_FILE)})
    if len(found) != 1:
        raise FileNotFoundError(
            f"expected exactly one triage model ({META_FILE}) under {root}, found {[str(p) for p in found]}"
        )
    return found[0]


def resolve_registered_model(name: str, tracking_uri: str, alias: str = CHAMPION_ALIAS) -> tuple[str, str]:
    """(model URI, how it was chosen): the `champion` alias, or, until the evaluation gate has set one,
    the newest registered version (said in the note, which callers log and put in metadata)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, alias)
        return f"models:/{name}@{alias}", f"alias {alias!r} -> version {version.version}"
    except MlflowException:
        versions = client.search_model_versions(f"name='{name}'")
        if not versions:
            raise FileNotFoundError(f"registered model {name!r} has no versions to serve") from None
        newest = max(versions, key=lambda v: int(v.version))
        return (f"models:/{name}/{newest.version}",
                f"no {alias!r} alias on {name!r}: fell back to the newest version {newest.version}")


def _version_of(client, model_uri: str) -> tuple[str, str]:
    """(name, version) of models:/name/3 or models:/name@alias."""
    if not model_uri.startswith("models:/"):
        raise ValueError(f"expected a models:/ URI, got {model_uri!r}")
    ref = model_uri[len("models:/"):]
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, str(client.get_model_version_by_alias(name, alias).version)
    name, _, version = ref.partition("/")
    return name, version


def model_dir_uri(model_uri: str, tracking_uri: str) -> str:
    """Where the triage model directory of a registered version lies in the artifact store (s3://...
    on MinIO in k8s): what an InferenceService's storageUri or a Seldon Model's storageUri points at."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name, version = _version_of(client, model_uri)
    root = client.get_model_version_download_uri(name, version).rstrip("/") + "/artifacts"
    for entry in mlflow.artifacts.list_artifacts(artifact_uri=root, tracking_uri=tracking_uri):
        if entry.is_dir:
            inside = mlflow.artifacts.list_artifacts(artifact_uri=f"{root}/{entry.path.rsplit('/', 1)[-1]}",
                                                    tracking_uri=tracking_uri)
            if any(f.path.endswith(META_FILE) for f in inside):
                return f"{root}/{entry.path.rsplit('/', 1)[-1]}"
    raise FileNotFoundError(f"no triage model directory ({META_FILE}) in {model_uri} ({root})")


def download_model(model_uri: str, tracking_uri: str | None, dst_dir: Path | None = None) -> Path:
    """Fetch an MLflow model (e.g. models:/name/3 or models:/name@champion) and return its model dir."""
    import mlflow

    dst = Path(dst_dir or tempfile.mkdtemp(prefix="triage-model-"))
    # MLflow 3.17 resolves the registered name of a models:/ URI through the *global* registry URI,
    # ignoring download_artifacts(registry_uri=...), so point the globals at it for the call.
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst))
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    return find_model_dir(Path(local))


def load_triage_model(model_dir: Path) -> LabelModel:
    from llama_platform.training.inference import TriageModel  # torch: only when needed

    return TriageModel.load(model_dir)


# ---------------------------------------------------------------- micro-batching


@dataclass
class _Pending:
    prompts: list[str]
    future: asyncio.Future


class MicroBatcher:
    """Gathers the prompts of concurrent requests into one model call.

    `workers` model calls run at once, each in a thread (the event loop stays free for probes): one
    for an accelerator, one per core on a CPU where a single call is single-threaded. A batch starts
    when a worker is free and either `max_batch` prompts are waiting or the oldest has waited
    `max_wait_s`; while a batch runs, the next one fills up, so under load batches grow by themselves.
    Hence the default wait of 0 (as Triton's dynamic batcher): waiting only helps when every worker
    is idle, which is exactly when latency, not throughput, is what counts (measured: at one client
    a 10 ms wait took p50 from 14 to 34 ms). A request is
    never split (one larger than max_batch runs alone). Written here rather than taken from a library:
    KServe 0.21 has no in-process batcher (its batcher is an agent sidecar in k8s) and MLServer's
    adaptive batching lives inside MLServer; this one serves both runtimes the same way.
    """

    def __init__(self, fn: Callable[[list[str]], list[dict]], max_batch: int = 32, max_wait_s: float = 0.0,
                 workers: int = 1):
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.workers = workers
        self._pending: list[_Pending] = []
        self._calls: set[asyncio.Task] = set()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        return sum(len(p.prompts) for p in self._pending)

    async def submit(self, prompts: list[str]) -> list[dict]:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._run())
        item = _Pending(list(prompts), loop.create_future())
        self._pending.append(item)
        self._wakeup.set()
        return await item.future

    def _take_batch(self) -> list[_Pending]:
        batch, size = [], 0
        while self._pending and (not batch or size + len(self._pending[0].prompts) <= self.max_batch):
            item = self._pending.pop(0)
            if item.future.cancelled():  # the client went away while queued
                continue
            batch.append(item)
            size += len(item.prompts)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        free = asyncio.Semaphore(self.workers)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                continue
            await free.acquire()  # the next batch fills up while every worker is busy
            deadline = loop.time() + self.max_wait_s
            while self._pending and self.queued < self.max_batch and loop.time() < deadline:
                await asyncio.sleep(min(0.001, max(0.0, deadline - loop.time())))
            batch = self._take_batch()
            if self._pending:
                self._wakeup.set()  # leftovers start the next round right away
            if not batch:
                free.release()
                continue
            task = loop.create_task(self._call(batch, free))
            self._calls.add(task)  # keep a reference until it is done
            task.add_done_callback(self._calls.discard)

    async def _call(self, batch: list[_Pending], free: asyncio.Semaphore) -> None:
        prompts = [p for item in batch for p in item.prompts]
        metrics.BATCH_SIZE.observe(len(prompts))
        try:
            results = await asyncio.to_thread(self.fn, prompts)
        except Exception as exc:  # every waiting request gets the error; nothing hangs
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            free.release()
        start = 0
        for item in batch:
            part = results[start : start + len(item.prompts)]
            start += len(item.prompts)
            if not item.future.done():
                item.future.set_result(part)


# ---------------------------------------------------------------- the service


@dataclass
class ServiceLimits:
    max_instances: int = MAX_INSTANCES  # per request
    max_queue: int = 256  # prompts queued or running; more are refused with 503
    batching: bool = True  # off: one model call per request, on the same workers (a fair baseline)
    max_batch: int = 32
    max_wait_s: float = 0.0  # see MicroBatcher
    batch_workers: int = 1  # model calls at once, batching or not: 1 for a GPU, one per core on a CPU


@dataclass
class TriageService:
    """Labels issues: parse -> repo features -> prompts -> (batched) model -> labels and scores."""

    model: LabelModel | None = None
    model_dir: Path | None = None
    model_uri: str | None = None
    tracking_uri: str | None = None
    download_dir: Path | None = None
    prompt_fn: Callable[..., str] = format_prompt
    feature_lookup: Callable[[list[str]], list[dict]] | None = None
    limits: ServiceLimits = field(default_factory=ServiceLimits)
    # How the served model was chosen (e.g. "alias 'champion' -> version 3"), shown in metadata.
    source_note: str = ""
    _in_flight: int = 0
    _batcher: MicroBatcher | None = None  # made by load()

    def __post_init__(self):
        if self.model is None and not self.model_dir and not self.model_uri:
            raise ValueError("TriagePredictor needs a model, a model_dir or a model_uri")

    def load(self) -> None:
        if self.model is None:
            model_dir = self.model_dir or download_model(self.model_uri, self.tracking_uri, self.download_dir)
            self.model = load_triage_model(Path(model_dir))
        # Batching off is a batch of one request: the same bounded workers, so the model never runs
        # more calls at once than there are cores (threads beyond that only fight over the GIL).
        max_batch, max_wait = (self.limits.max_batch, self.limits.max_wait_s) if self.limits.batching else (1, 0.0)
        self._batcher = MicroBatcher(self._predict_by_length, max_batch, max_wait, self.limits.batch_workers)

    def _predict_by_length(self, prompts: list[str]) -> list[dict]:
        """One model call with the prompts sorted by length (the model pads each chunk to its longest
        sequence, so similar lengths together waste less), answers put back in request order."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results = self.model.predict([prompts[i] for i in order])
        out: list[dict] = [{}] * len(prompts)
        for pos, i in enumerate(order):
            out[i] = results[pos]
        return out

    @property
    def info(self) -> dict:
        return {
            "model_uri": self.model_uri or (str(self.model_dir) if self.model_dir else "in-process"),
            "source": self.source_note,
            "batching": {"on": self.limits.batching, "max_batch": self.limits.max_batch,
                         "max_wait_ms": round(self.limits.max_wait_s * 1000, 3), "workers": self.limits.batch_workers},
        }

    def check_size(self, instances: list[dict]) -> None:
        if len(instances) > self.limits.max_instances:
            raise BadRequest(f"at most {self.limits.max_instances} instances per request, got {len(instances)}")

    async def add_features(self, instances: list[dict]) -> None:
        """Fill in the repo features training prompts had, for instances that bring none."""
        if self.feature_lookup is None:
            return
        missing = [i for i in instances if i.get("features") is None]
        if not missing:
            return
        looked_up = await asyncio.to_thread(self.feature_lookup, [i["repo"] for i in missing])
        for inst, feats in zip(missing, looked_up):
            inst["features"] = feats

    async def predict(self, instances: list[dict]) -> list[dict]:
        """[{"labels", "scores"}] for parsed instances; features are filled in place (the caller may
        show them as the repo context)."""
        self.check_size(instances)
        n = len(instances)
        # Admission control: refuse rather than queue without bound (clients retry after a moment).
        if self._in_flight + n > self.limits.max_queue:
            metrics.REJECTED.labels(reason="queue_full").inc()
            raise Overloaded(f"server busy: {self._in_flight} prompts queued or running "
                             f"(limit {self.limits.max_queue}); retry shortly",
                             retry_after=1)
        self._in_flight += n
        metrics.QUEUE_DEPTH.set(self._in_flight)
        try:
            await self.add_features(instances)
            prompts = [self.prompt_fn(i["title"], i["body"], i["repo"], i.get("features")) for i in instances]
            if self._batcher is None:
                raise RuntimeError("TriageService.load() was not called")
            results = await self._batcher.submit(prompts)
        finally:
            self._in_flight -= n
            metrics.QUEUE_DEPTH.set(self._in_flight)
        return [{"labels": list(r["labels"]), "scores": {k: float(v) for k, v in r["scores"].items()}} for r in results]

