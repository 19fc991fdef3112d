"""The data-quality report notebook, executed for real: by Dagster as the `dataset_report` asset
(dagstermill, a Jupyter kernel) and, as in JupyterLab, on its own from the platform's settings."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from dagster import AssetKey, Definitions, define_asset_job, execute_job, instance_for_test, materialize, reconstructable
from nbclient import NotebookClient

from llama_platform.assets.cleaning import clean
from llama_platform.assets.report import NOTEBOOK_PATH, ReportNotebookIOManager, dataset_report
from llama_platform.assets.snapshot import issue_snapshot
from llama_platform.resources.cleaning import CleaningResource
from llama_platform.resources.io_manager import ParquetIOManager
from llama_platform.resources.object_store import ObjectStoreResource
from llama_platform_tests.assets.factories import raw_frame, stub

# A code cell of each section -> whether it draws (by a snippet of its source).
PLOT_CELLS = {
    "length": "ax.hist(",
    "labels": 'pd.crosstab(df["label"]',
    "repos": 'groupby(["source", "repo"])',
    "filters": "reasons.sort_values()",
}


def report_job():
    """The report asset alone, as a reconstructable job: dagstermill's kernel rebuilds it from here."""
    defs = Definitions(
        assets=[dataset_report],
        jobs=[define_asset_job("report_job", selection=["dataset_report"])],
        resources={
            "object_store": ObjectStoreResource.configure_at_launch(),
            "output_notebook_io_manager": ReportNotebookIOManager.configure_at_launch(),
        },
    )
    return defs.resolve_job_def("report_job")


@pytest.fixture()
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture()
def platform(home, monkeypatch):
    """A Dagster instance where the platform's settings look for it, with one snapshot materialised."""
    store_url = f"file://{home}/store"
    monkeypatch.setenv("LLAMA_PLATFORM_HOME", str(home))  # read by settings in the notebook's kernel
    monkeypatch.setenv("LLAMA_PLATFORM_STORE_URL", store_url)
    (home / "dagster_home").mkdir(parents=True)
    with instance_for_test(temp_dir=str(home / "dagster_home")) as instance:
        result = materialize(
            [stub("raw_issues", raw_frame()), clean, issue_snapshot],
            instance=instance,
            resources={
                "parquet_io_manager": ParquetIOManager(url=store_url),
                "object_store": ObjectStoreResource(url=store_url),
                "cleaning": CleaningResource(spill_dir=str(home / "spill")),
            },
        )
        assert result.success
        yield instance, store_url


def _version(instance) -> str:
    event = instance.get_latest_materialization_event(AssetKey("issue_snapshot"))
    return event.asset_materialization.metadata["snapshot_version"].value


def _assert_report(nb) -> None:
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    for section, snippet in PLOT_CELLS.items():
        (cell,) = [c for c in code if snippet in c.source]
        assert any("image/png" in o.get("data", {}) for o in cell.outputs), f"{section}: no plot"
    (lang_cell,) = [c for c in code if 'df["lang"]' in c.source]
    # Plotted when the snapshot carries language tags, else said so in words.
    drew = any("image/png" in o.get("data", {}) for o in lang_cell.outputs)
    said = any("no `lang` column" in o.get("text", "") for o in lang_cell.outputs)
    assert drew or said


def test_dagster_executes_the_report_notebook(platform, home):
    instance, store_url = platform
    run_config = {
        "resources": {
            "object_store": {"config": {"url": store_url}},
            "output_notebook_io_manager": {"config": {"base_dir": str(home / "notebooks")}},
        }
    }
    with execute_job(reconstructable(report_job), instance=instance, run_config=run_config) as result:
        assert result.success

    event = instance.get_latest_materialization_event(AssetKey("dataset_report"))
    notebook_path = Path(event.asset_materialization.metadata["Executed notebook"].value)
    assert notebook_path.is_file() and notebook_path.is_relative_to(home / "notebooks")
    executed = nbformat.read(notebook_path, as_version=4)
    _assert_report(executed)
    # Its plots are on the asset too, as inline PNGs (one per figure the notebook drew).
    n_png = sum("image/png" in o.get("data", {}) for c in executed.cells for o in c.get("outputs", []))
    figures = [k for k in event.asset_materialization.metadata if k.startswith("figure_")]
    assert n_png >= 4 and len(figures) == n_png
    assert event.asset_materialization.metadata["figure_1"].value.startswith("![figure_1](data:image/png;base64,iVBOR")
    # The report says which snapshot it describes, in the notebook and on the asset.
    version = _version(instance)
    assert any(version in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    observation = instance.fetch_observations(AssetKey("dataset_report"), limit=1).records[0]
    assert observation.asset_observation.metadata["snapshot_version"].value == version


@pytest.mark.slow  # a second kernel start; the Dagster-executed test above covers the plots
def test_notebook_runs_on_its_own_as_in_jupyterlab(platform, tmp_path):
    instance, _ = platform
    nb = nbformat.read(NOTEBOOK_PATH, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    _assert_report(nb)
    assert any(_version(instance) in o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
