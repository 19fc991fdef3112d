"""checkov over deploy/: the rendered overlays (kubernetes), the Terraform and the Dockerfile report
0 failed checks, and every skip carries its reason inline (a checkov.io/skip annotation or a
`checkov:skip=ID: reason` comment). checkov runs from its own environment (`make checkov`)."""

from __future__ import annotations

import json
import subprocess

import pytest

from llama_platform_tests.deploy.manifests import DEPLOY, OVERLAYS, REPO, rendered

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def checkov() -> str:
    if not CHECKOV.exists():
        # `make test` builds it first; a direct pytest run builds it here.
        made = subprocess.run(["make", "-C", str(REPO), "checkov"], capture_output=True, text=True, timeout=900)
        if made.returncode != 0 or not CHECKOV.exists():
            pytest.fail(f"checkov could not be installed into .venv-checkov (`make checkov`): {made.stderr[-500:]}")
    return str(CHECKOV)


def _run(checkov: str, *args: str) -> list[dict]:
    # --skip-download: no call to the vendor's API (guidelines, policies); only the bundled checks.
    result = subprocess.run([checkov, *args, "--skip-download", "--compact", "-o", "json"],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def _failures(reports: list[dict]) -> list[str]:
    return [f"{r.get('check_type')}: {f['check_id']} {f['check_name']} on {f['resource']} ({f['file_path']})"
            for r in reports for f in r.get("results", {}).get("failed_checks", [])]


def _skips(reports: list[dict]) -> list[dict]:
    """(check id, the reason written next to the skip)."""
    return [(s["check_id"], s["check_result"].get("suppress_comment", ""))
            for r in reports for s in r.get("results", {}).get("skipped_checks", [])]


@pytest.mark.slow
def test_checkov_passes_rendered_overlays(checkov, tmp_path):
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(rendered(overlay))
    reports = _run(checkov, "-d", str(tmp_path), "--framework", "kubernetes")
    assert _failures(reports) == []
    [report] = reports
    assert report["summary"]["passed"] > 500 and report["summary"]["resource_count"] > 150
    assert report["summary"]["parsing_errors"] == 0
    # Skips are the two documented ones, each with its reason.
    skips = _skips(reports)
    assert {check for check, _ in skips} == {"CKV_K8S_43", "CKV_K8S_35"}
    assert all(len(reason) > 40 for _, reason in skips), skips


@pytest.mark.slow
def test_checkov_passes_dockerfile_and_terraform(checkov):
    [docker] = _run(checkov, "-d", str(DEPLOY / "docker"), "--framework", "dockerfile")
    terraform = _run(checkov, "-d", str(DEPLOY / "terraform"), "--framework", "terraform")
    reports = [docker, *terraform]
    assert _failures(reports) == []
    assert docker["summary"]["passed"] > 50
    assert {check for check, _ in _skips(reports)} <= {"CKV_DOCKER_2", "CKV_DOCKER_7"}
    assert all(len(reason) > 40 for _, reason in _skips(reports)), _skips(reports)
    # Terraform here is helm_release/kustomization_resource only, for which checkov has no checks:
    # it must still parse every file (a syntax error shows as a parsing error).
    for report in reports:
        # A framework with nothing to check prints only its summary.
        assert report.get("summary", report)["parsing_errors"] == 0, report
