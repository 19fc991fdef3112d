"""The data-quality report: notebooks/dataset_report.ipynb, executed by Dagster (dagstermill) as an asset.

The notebook reads the latest snapshot *through Dagster*: the snapshot version comes from
issue_snapshot's latest materialization on the instance, the rows from the object-store resource,
and the filter counts from cleaned_issues' materialization metadata. The helpers below are what the
notebook calls, both when Dagster runs it and when someone opens it in JupyterLab.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
import json

import pandas as pd
from dagster import AssetKey, DagsterInstance, EnvVar, MetadataValue
from dagstermill import define_dagstermill_asset
from dagstermill.io_managers import ConfigurableLocalOutputNotebookIOManager, LocalOutputNotebookIOManager

from llama_platform.assets.common import code_version_of
from llama_platform.data.snapshot import read_snapshot
from llama_platform.data.store import StoreLocation
from llama_platform.resources.object_store import ObjectStoreResource

NOTEBOOK_PATH = Path(__file__).resolve().parents[2] / "notebooks" / "dataset_report.ipynb"


class ReportInputMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class ReportData:
    snapshot: pd.DataFrame  # the snapshot's rows, with `split`
    manifest: dict[str, Any]
    snapshot_meta: dict[str, Any]  # issue_snapshot's materialization metadata
    cleaning_meta: dict[str, Any]  # cleaned_issues' materialization metadata (filter/quarantine counts)

    @property
    def version(self) -> str:
        return self.manifest["version"]


def _latest_metadata(instance: DagsterInstance, key: str) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(AssetKey(key))
    if event is None or event.asset_materialization is None:
        raise ReportInputMissing(f"{key} has not been materialised on this Dagster instance yet")
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def load_report_data(instance: DagsterInstance, store: StoreLocation) -> ReportData:
    """The latest snapshot (by issue_snapshot's latest materialization) and the cleaning counts."""
    snapshot_meta = _latest_metadata(instance, "issue_snapshot")
    df, manifest = read_snapshot(store, snapshot_meta["snapshot_version"])
    return ReportData(df, manifest, snapshot_meta, _latest_metadata(instance, "cleaned_issues"))


def notebook_instance(context) -> DagsterInstance:
    """The Dagster instance behind a dagstermill context: the run's own when Dagster executes the
    notebook, else (JupyterLab) the platform's instance from settings."""
    step_context = getattr(context, "step_context", None)
    if step_context is not None:
        return step_context.instance
    from llama_platform.settings import load_settings

    return DagsterInstance.from_config(str(load_settings().dagster_home))


def interactive_resources() -> dict:
    """Resources for `dagstermill.get_context` when the notebook is opened in JupyterLab: the object
    store from the platform's settings (S3 keys as EnvVar, resolved at init and never printed).

    Built here rather than taken from definitions.build_resources: importing the whole Definitions
    (Feast, torch) would add half a minute to opening the notebook.
    """
    from llama_platform.settings import S3_ACCESS_KEY_ENV, S3_SECRET_KEY_ENV, load_settings

    settings = load_settings()
    keys = {}
    if settings.store_is_s3:
        keys = {"access_key": EnvVar(S3_ACCESS_KEY_ENV), "secret_key": EnvVar(S3_SECRET_KEY_ENV)}
    store = ObjectStoreResource(
        url=settings.store_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region, **keys
    )
    return {"object_store": store.get_resource_definition()}


dataset_report = define_dagstermill_asset(
    name="dataset_report",
    notebook_path=str(NOTEBOOK_PATH),
    # The notebook reads the snapshot itself (by the version in issue_snapshot's metadata): no input.
    deps=["issue_snapshot"],
    required_resource_keys={"object_store"},
    group_name="preprocessing",
    description="Data-quality report on the latest snapshot: length, language, label and repo "
    "distributions and filter counts (executed notebook linked in metadata).",
    io_manager_key="output_notebook_io_manager",
    save_notebook_on_failure=True,
    asset_tags={"stage": "report"},
).map_asset_specs(  # dagstermill's factory takes no code_version; the spec does
    lambda spec: spec.replace_attributes(code_version=code_version_of("assets/report.py", "../notebooks/dataset_report.ipynb"))
)


def notebook_figures(notebook: bytes) -> dict[str, MetadataValue]:
    """The executed notebook's plots (its image/png outputs), as metadata of dataset_report: the
    report is readable from the asset's page, not only as an .ipynb file on this machine."""
    figures: dict[str, MetadataValue] = {}
    for cell in json.loads(notebook).get("cells", []):
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                png = "".join(png) if isinstance(png, list) else png
                name = f"figure_{len(figures) + 1}"
                figures[name] = MetadataValue.md(f"![{name}](data:image/png;base64,{png.strip()})")
    return figures


class _ReportNotebookIOManager(LocalOutputNotebookIOManager):
    def handle_output(self, context, obj: bytes):
        super().handle_output(context, obj)
        if context.has_asset_key:
            context.add_output_metadata(notebook_figures(obj))


class ReportNotebookIOManager(ConfigurableLocalOutputNotebookIOManager):
    """dagstermill's local output-notebook IO manager, which also attaches the notebook's plots."""

    def create_io_manager(self, context) -> LocalOutputNotebookIOManager:
        return _ReportNotebookIOManager(
            base_dir=self.base_dir or context.instance.storage_directory(), asset_key_prefix=self.asset_key_prefix
        )
