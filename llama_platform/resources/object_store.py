"""The object store (local folder or S3 API: SeaweedFS in tests, MinIO in k8s) as a Dagster resource."""

from __future__ import annotations

from typing import Optional

from dagster import ConfigurableResource

from llama_platform.data.store import StoreLocation, open_store


class ObjectStoreResource(ConfigurableResource):
    url: str
    endpoint_url: Optional[str] = None
    region: str = "us-east-1"
    # Given as dagster.EnvVar in definitions so the values never show in the UI.
    access_key: Optional[str] = None
    secret_key: Optional[str] = None

    def location(self) -> StoreLocation:
        return open_store(self.url, self.endpoint_url, self.access_key, self.secret_key, self.region)
