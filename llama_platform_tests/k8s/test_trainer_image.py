"""The trainer image's Dockerfile, read with dockerfile-parse (no CUDA base image can be pulled
here, so it is not built in tests): pinned bases and packages, the non-root user the pods expect,
and an entrypoint module that exists and whose imports the image installs."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from llama_platform.k8s import common
from llama_platform.k8s.training import HOME, TRAIN_MODULE
from llama_platform_tests.k8s.dockerfiles import installed_pins

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "trainer.Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"


@pytest.fixture(scope="module")
def parsed() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE))


def test_base_images_are_pinned_cuda_images(parsed):
    images = parsed.parent_images
    assert all(":" in image and not image.endswith(":latest") for image in images), images
    cuda = [image for image in images if image.startswith("nvidia/cuda:")]
    assert len(cuda) == 2 and all(re.match(r"nvidia/cuda:\d+\.\d+\.\d+-", image) for image in cuda)
    assert "devel" in cuda[0] and "runtime" in cuda[1] and parsed.baseimage == cuda[1]  # slim final stage
    # torch 2.13.0's PyPI wheel is built for CUDA 13: DeepSpeed's ops must be compiled with the same major.
    assert {image.split(":")[1].split(".")[0] for image in cuda} == {"13"}


def test_runs_as_the_pods_non_root_user(parsed):
    users = [item["value"] for item in parsed.structure if item["instruction"] == "USER"]
    assert users and users[-1] == f"{common.RUN_AS_USER}:{common.RUN_AS_GROUP}"
    assert parsed.envs["HOME"] == HOME == "/home/app"
    _, mounts = common.scratch_volumes()
    assert HOME in {m.mount_path for m in mounts}  # writable under a read-only root filesystem


def test_entrypoint_is_the_training_module(parsed):
    [entrypoint] = [item["value"] for item in parsed.structure if item["instruction"] == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["python", "-m", TRAIN_MODULE]
    assert importlib.util.find_spec(TRAIN_MODULE) is not None


def test_packages_are_pinned_and_agree_with_pyproject(parsed):
    pins = installed_pins(parsed)
    for name in ("torch", "transformers", "peft", "deepspeed", "bitsandbytes", "accelerate", "dagster-pipes"):
        assert name in pins, f"{name} is not installed in the trainer image"
    # Where pyproject pins a version (exactly or by a wildcard), the image must agree.
    declared = re.findall(r'"([A-Za-z0-9_.-]+)==([0-9A-Za-z.*+]+)"', PYPROJECT.read_text())
    for name, spec in declared:
        if name.lower() in pins:
            pattern = re.escape(spec).replace(r"\*", ".*")
            assert re.fullmatch(pattern, pins[name.lower()]), f"{name}: image {pins[name.lower()]} vs pyproject {spec}"


def _third_party_imports(package_dir: Path) -> set[str]:
    names: set[str] = set()
    for path in package_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("llama_platform", "__future__")}


def test_image_installs_every_package_the_trainer_imports(parsed):
    pins = installed_pins(parsed)
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(_third_party_imports(ROOT / "llama_platform" / "training")):
        dists = {d.lower() for d in distributions.get(module, [module])}
        if not dists & set(pins):
            missing[module] = sorted(dists)
    assert not missing, f"the trainer imports these but the image does not install them: {missing}"
