"""The MLServer image's Dockerfile (deploy/docker/mlserver.Dockerfile), read with dockerfile-parse as
the trainer's is (no base image can be pulled here): two stages, the pods' non-root user, a
read-only-root-friendly runtime, every package pinned and agreeing with the lock of the tested
.venv-mlserver, every import of the runtime installed, and an entrypoint the Seldon Server (built
in code and in deploy/k8s) starts the way the image means."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from llama_platform.k8s import common, serving
from llama_platform_tests.k8s.dockerfiles import installed_pins

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "mlserver.Dockerfile"
PLATFORM_DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
LOCK = ROOT / "deploy" / "docker" / "mlserver-constraints.txt"
SERVER_MANIFEST = ROOT / "deploy" / "k8s" / "base" / "serving" / "seldon-server.yaml"
MLSERVER_VENV = ROOT / ".venv-mlserver"
# MLServer needs these older than the main venv's (see the Makefile's mlserver-env).
MLSERVER_OWN = {"fastapi", "starlette", "importlib-resources"}
# Where the runtime's imports start: the runtime MLServer loads and the image's entrypoint.
ENTRY_MODULES = ("llama_platform.serving.mlserver_runtime", "llama_platform.serving.mlserver_app")
# Optional at run time: a feature lookup is named in model-settings (features/online.py needs Feast,
# which the image leaves out; the KServe predictor carries the repo features).
OPTIONAL = ("llama_platform.features",)


@pytest.fixture(scope="module")
def parsed() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE))


def _stages(parsed: DockerfileParser) -> list[list[dict]]:
    stages: list[list[dict]] = []
    for item in parsed.structure:
        if item["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(item)
    return stages


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"{LOCK.name}: not a pin: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def _installed() -> dict[str, importlib.metadata.Distribution]:
    """The tested environments, as the MLServer venv sees them: its own packages first, then the main venv's."""
    dists: dict[str, importlib.metadata.Distribution] = {}
    site = sorted(MLSERVER_VENV.glob("lib/python*/site-packages"))
    assert site, f"{MLSERVER_VENV} is missing: run `make mlserver-env`"
    for path in ([str(site[0])], None):
        for dist in importlib.metadata.distributions(**({"path": path} if path else {})):
            dists.setdefault(canonicalize_name(dist.metadata["Name"]), dist)
    return dists


def _closure(roots: set[str], dists: dict[str, importlib.metadata.Distribution]) -> set[str]:
    """Every distribution `roots` pull in (their requirements for this platform, no extras)."""
    env = {**default_environment(), "extra": ""}
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in dists[name].requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(canonicalize_name(req.name))
    return seen


def test_two_stages_on_the_platform_image_base(parsed):
    build, runtime = _stages(parsed)
    assert "AS build" in build[0]["value"] and "AS runtime" in runtime[0]["value"]
    images = parsed.parent_images
    assert len(set(images)) == 1 and re.fullmatch(r"docker\.io/library/python:3\.11\.\d+-slim-\w+", images[0])
    assert images == DockerfileParser(str(PLATFORM_DOCKERFILE)).parent_images  # the same base as the platform image
    # The runtime stage takes only the venv from the build stage: no compilers, no pip cache, no sources.
    copies = [i["value"] for i in runtime if i["instruction"] == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    assert not [i for i in runtime if i["instruction"] == "RUN" and "pip" in i["value"]]


def test_runs_as_the_pods_non_root_user_on_a_read_only_root(parsed):
    users = [item["value"] for item in parsed.structure if item["instruction"] == "USER"]
    assert users and users[-1] == f"{common.RUN_AS_USER}:{common.RUN_AS_GROUP}"
    # Everything the server writes is under $HOME or /tmp: the emptyDirs of a read-only root.
    _, mounts = common.scratch_volumes()
    writable = {m.mount_path for m in mounts}
    assert writable == {"/tmp", parsed.envs["HOME"]}
    assert parsed.envs["HF_HOME"].startswith(parsed.envs["HOME"] + "/")
    assert parsed.envs["PYTHONDONTWRITEBYTECODE"] == "1"
    [_, runtime] = _stages(parsed)
    assert [i["value"] for i in runtime if i["instruction"] == "WORKDIR"] == [parsed.envs["HOME"]]
    # No parallel workers: they would need a metrics dir to write and cannot take the custom handlers' requests.
    assert parsed.envs["MLSERVER_PARALLEL_WORKERS"] == "0"


def test_packages_are_pinned_to_the_tested_lock(parsed):
    pins = installed_pins(parsed)
    assert pins["mlserver"] == "1.7.1" and pins["torch"] == "2.13.0"
    torch_run = next(i["value"] for i in parsed.structure if i["instruction"] == "RUN" and "torch==" in i["value"])
    assert '--extra-index-url "$TORCH_INDEX_URL"' in torch_run and "-c constraints.txt" in torch_run
    assert lock_pins()["torch"] == "2.13.0+cpu"  # only the CPU index has it: never the CUDA build
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in [
        i["value"] for i in parsed.structure if i["instruction"] == "ARG"]
    # Every install line is constrained by the lock, and every pin is the lock's version.
    assert all("-c constraints.txt" in i["value"] for i in parsed.structure
               if i["instruction"] == "RUN" and "pip install" in i["value"] and "--no-deps" not in i["value"])
    lock = lock_pins()
    for name, version in pins.items():
        assert Version(lock[name]).public == Version(version).public, f"{name}: image {version} vs lock {lock[name]}"
    assert Version(lock["fastapi"]) < Version("0.116") and Version(lock["starlette"]) < Version("0.47")


def test_lock_agrees_with_the_tested_environments(parsed):
    """Every package the image installs has a pin in the lock, at the version the tests ran with."""
    dists, lock = _installed(), lock_pins()
    image = _closure(set(installed_pins(parsed)), dists)
    assert {"fastapi", "starlette", "grpcio", "prometheus-client", "numpy"} <= image
    # pip and setuptools come with the venv itself (pip freeze leaves them out too).
    stale = {n: (lock.get(n), dists[n].version) for n in sorted(image - {"pip", "setuptools"})
             if lock.get(n) != dists[n].version}
    assert not stale, f"run `make mlserver-constraints`: lock vs tested versions differ: {stale}"
    for name in MLSERVER_OWN:  # MLServer's own, older than the main venv's
        assert lock[name] == dists[name].version
    assert lock["setuptools"] == importlib.metadata.version("setuptools")  # torch needs it: not left floating


def _runtime_imports() -> set[str]:
    """Third-party top-level modules imported (at any depth) by the runtime and the code it reaches."""
    third_party: set[str] = set()
    seen: set[str] = set()
    todo = list(ENTRY_MODULES)
    while todo:
        module = todo.pop()
        if module in seen or module.startswith(OPTIONAL):
            continue
        seen.add(module)
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = path.with_suffix("") / "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.startswith("llama_platform"):
                    stem = ROOT / name.replace(".", "/")
                    if stem.with_suffix(".py").exists() or (stem / "__init__.py").exists():  # a module, not a name
                        todo.append(name)
                else:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "__future__":
                        third_party.add(top)
    assert "llama_platform.training.inference" in seen and "llama_platform.serving.auth" in seen
    return third_party


def test_image_installs_every_package_the_runtime_imports(parsed):
    dists = _installed()
    image = _closure(set(installed_pins(parsed)), dists)
    providers = importlib.metadata.packages_distributions()
    site = sorted(MLSERVER_VENV.glob("lib/python*/site-packages"))
    for dist in importlib.metadata.distributions(path=[str(site[0])]):
        for top in (dist.read_text("top_level.txt") or "").split():
            providers.setdefault(top, []).append(dist.metadata["Name"])
    providers.setdefault("mlserver", ["mlserver"])
    modules = _runtime_imports()
    assert {"mlserver", "torch", "transformers", "peft", "fastapi", "grpc", "prometheus_client"} <= modules
    missing = {m: providers.get(m, [m]) for m in sorted(modules)
               if not {canonicalize_name(d) for d in providers.get(m, [m])} & image}
    assert not missing, f"the runtime imports these but the image does not install them: {missing}"


def _container(pod_spec: dict) -> dict:
    [container] = [c for c in pod_spec["containers"] if c["name"] == "mlserver"]
    return container


def test_the_seldon_server_starts_the_image_as_it_means(parsed):
    [entrypoint] = [i["value"] for i in parsed.structure if i["instruction"] == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["python", "-m", serving.MLSERVER_MODULE]
    assert importlib.util.find_spec(serving.MLSERVER_MODULE) is not None
    [cmd] = [i["value"] for i in parsed.structure if i["instruction"] == "CMD"]
    assert json.loads(cmd) == ["start", parsed.envs["MLSERVER_MODELS_DIR"]]

    built = serving.seldon_server()["spec"]["podSpec"]
    manifest = yaml.safe_load(SERVER_MANIFEST.read_text())["spec"]["podSpec"]
    ours = _container(built)
    assert ours["image"] == serving.MLSERVER_IMAGE and "command" not in ours  # the image's entrypoint runs
    # MLServer's `start FOLDER` after our options; the ServerConfig sets MLSERVER_MODELS_DIR.
    assert ours["args"] == [f"--max-body-bytes={serving.MAX_BODY_BYTES}", "start", "$(MLSERVER_MODELS_DIR)"]
    env = {e["name"]: e["value"] for e in ours["env"]}
    assert env["MLSERVER_PARALLEL_WORKERS"] == parsed.envs["MLSERVER_PARALLEL_WORKERS"] == "0"
    assert env["MLSERVER_GRPC_MAX_MESSAGE_LENGTH"] == str(serving.MAX_BODY_BYTES)
    # The keys: the mounted Secret's keys.json (hashed, scoped; re-read on change), never env.
    keys_mount = next(m for m in ours["volumeMounts"] if m["name"] == "serving-keys")
    assert env["LLAMA_PLATFORM_SERVING_KEYS_FILE"] == f"{keys_mount['mountPath']}/{serving.KEYS_FILE}"
    assert keys_mount["readOnly"] is True
    keys_volume = next(v for v in built["volumes"] if v["name"] == "serving-keys")
    assert keys_volume["secret"]["secretName"] == common.SERVING_KEYS_SECRET
    assert "envFrom" not in ours
    # MLServer's metrics server on a named port, the one the PodMonitor scrapes.
    assert env["MLSERVER_METRICS_PORT"] == str(serving.MLSERVER_METRICS_PORT)
    assert ours["ports"] == [{"name": serving.METRICS_PORT_NAMES["mlserver"],
                              "containerPort": serving.MLSERVER_METRICS_PORT, "protocol": "TCP"}]
    assert ours["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in ours["volumeMounts"]} >= {"/tmp", parsed.envs["HOME"]}
    # deploy/k8s's Server is the same container as the one k8s/serving.py builds.
    theirs = _container(manifest)
    for field in ("name", "image", "args", "env", "ports", "securityContext", "volumeMounts", "resources"):
        assert theirs.get(field) == ours.get(field), field
    assert "envFrom" not in theirs
    assert manifest["volumes"] == built["volumes"]
