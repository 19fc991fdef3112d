"""Reading facts that upstream assets recorded in their materialization metadata."""

from __future__ import annotations

from dagster import AssetExecutionContext, AssetKey


class UpstreamNotMaterialised(RuntimeError):
    pass


def upstream_metadata(context: AssetExecutionContext, asset: str) -> dict:
    """The metadata of the latest materialization of `asset` (values unwrapped)."""
    event = context.instance.get_latest_materialization_event(AssetKey(asset))
    if event is None or event.asset_materialization is None:
        raise UpstreamNotMaterialised(f"{asset} has not been materialised yet: materialise it first")
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def upstream_partitions(context: AssetExecutionContext, asset: str) -> list[str]:
    """Which partitions of a partitioned upstream asset are materialised (the snapshot's raw lineage)."""
    keys = context.instance.get_materialized_partitions(AssetKey(asset))
    return sorted(keys)
