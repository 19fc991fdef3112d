"""deploy/terraform, checked offline: canonical formatting (terraform fmt), pinned providers,
typed variables with validation, and module slices that cover every manifest object.
`terraform init/plan` need the providers from the registry, which these machines cannot reach
(deploy/README.md shows them for users)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from llama_platform_tests.deploy.manifests import DEPLOY, OVERLAYS, objects

TERRAFORM = DEPLOY / "terraform"
MODULES = sorted(p.name for p in (TERRAFORM / "modules").iterdir() if p.is_dir())
ENVS = ("dev", "prod")


def _terraform() -> str:
    found = shutil.which("terraform")
    if not found:
        pytest.skip("terraform is not installed on this machine (fmt needs no providers, only the binary)")
    return found


def test_terraform_fmt_is_clean():
    result = subprocess.run([_terraform(), "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_modules_and_roots_exist():
    assert set(MODULES) >= {"namespaces", "minio", "postgres", "mlflow", "dagster", "kserve", "monitoring"}
    for env in ENVS:
        main = (TERRAFORM / "envs" / env / "main.tf").read_text()
        used = set(re.findall(r'source\s*=\s*"\.\./\.\./modules/([a-z-]+)"', main))
        assert used == set(MODULES) - {"kustomize-slice"}, env
        assert f"k8s/overlays/{env}" in main


@pytest.mark.parametrize("path", sorted(str(p.relative_to(TERRAFORM)) for p in TERRAFORM.rglob("versions.tf")))
def test_providers_are_pinned(path):
    text = (TERRAFORM / path).read_text()
    assert "required_version" in text
    blocks = re.findall(r'source\s*=\s*"([^"]+)"\s*\n\s*version\s*=\s*"([^"]+)"', text)
    assert blocks, path
    for source, version in blocks:
        assert re.fullmatch(r"~> \d+\.\d+\.\d+", version), f"{path}: {source} {version} is not pinned to a patch series"


@pytest.mark.parametrize("path", sorted(str(p.relative_to(TERRAFORM)) for p in TERRAFORM.rglob("variables.tf")))
def test_variables_are_typed_and_described(path):
    text = (TERRAFORM / path).read_text()
    blocks = re.split(r'\nvariable "', "\n" + text)[1:]
    assert blocks
    for block in blocks:
        name = block.split('"')[0]
        assert re.search(r"\n\s*type\s*=", block), f"{path}: {name} has no type"
        assert re.search(r"\n\s*description\s*=", block), f"{path}: {name} has no description"
    # Each file validates what a user types (paths and version pins are checked where they enter).
    assert "validation {" in text or path.startswith("modules/") and "overlay_path" in text, path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_object_belongs_to_one_terraform_slice(overlay):
    slices = set(re.findall(r'module_label\s*=\s*"([a-z]+)"', "".join(
        p.read_text() for p in (TERRAFORM / "modules").rglob("main.tf"))))
    allowed = set(re.search(r"contains\(\[([^]]+)\]", (TERRAFORM / "modules/kustomize-slice/variables.tf").read_text())
                  .group(1).replace('"', "").replace(" ", "").split(","))
    assert slices == allowed
    for obj in objects(overlay):
        label = obj["metadata"]["labels"].get("llama-platform/module")
        assert label in slices, f"{obj['kind']}/{obj['metadata']['name']}: slice {label!r} is applied by no module"
