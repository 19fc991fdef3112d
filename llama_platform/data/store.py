"""Where datasets live: a local folder or any S3-compatible endpoint, behind one pyarrow filesystem.

Pure code: it takes explicit URLs and credentials (the object-store resource supplies them),
so the same functions write to a temp folder in unit tests and to SeaweedFS/MinIO elsewhere.
Delta Lake tables (deltalake, its own Rust object store) are reached through `table_uri` plus
`storage_options`, built here from the same URL and credentials.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pyarrow.fs as pafs


@dataclass(frozen=True)
class StoreLocation:
    fs: pafs.FileSystem
    root: str  # path inside `fs` (bucket/prefix for S3, absolute folder for local)
    url: str  # the store URL it was opened from, for display
    # deltalake's options for this store (endpoint, keys): kept out of repr so keys never reach a log.
    storage_options: dict[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def uri(self, *parts: str) -> str:
        return posixpath.join(self.url.rstrip("/"), *parts)

    def table_uri(self, *parts: str) -> str:
        """The URI deltalake opens for a table at `parts` (a local path, or s3://bucket/prefix/...)."""
        full = self.path(*parts)
        return full if isinstance(self.fs, pafs.LocalFileSystem) else f"s3://{full}"

    def write_bytes(self, rel: str, data: bytes) -> None:
        full = self.path(rel)
        self.fs.create_dir(posixpath.dirname(full), recursive=True)
        with self.fs.open_output_stream(full) as f:
            f.write(data)

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def listdir(self, rel: str) -> list[str]:
        info = self.fs.get_file_info(pafs.FileSelector(self.path(rel), allow_not_found=True))
        return sorted(posixpath.basename(i.path) for i in info)


def open_store(
    url: str,
    endpoint_url: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str = "us-east-1",
) -> StoreLocation:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        root = parsed.path
        fs = pafs.LocalFileSystem()
        fs.create_dir(root, recursive=True)
        return StoreLocation(fs=fs, root=root, url=url)
    if parsed.scheme == "s3":
        kwargs: dict = {"region": region}
        if endpoint_url:
            ep = urlparse(endpoint_url)
            kwargs["endpoint_override"] = ep.netloc
            kwargs["scheme"] = ep.scheme or "http"
        if access_key and secret_key:
            kwargs["access_key"] = access_key
            kwargs["secret_key"] = secret_key
        fs = pafs.S3FileSystem(**kwargs)
        root = (parsed.netloc + parsed.path).rstrip("/")
        return StoreLocation(fs=fs, root=root, url=url, storage_options=delta_storage_options(
            endpoint_url, access_key, secret_key, region
        ))
    raise ValueError(f"unsupported store URL {url!r}: use file:// or s3://")


def delta_storage_options(
    endpoint_url: str | None, access_key: str | None, secret_key: str | None, region: str
) -> dict[str, str]:
    """deltalake storage_options for an S3 endpoint (AWS, SeaweedFS, MinIO).

    Unsafe rename (no lock table) is fine here: a snapshot table is written once under its content
    hash, so two concurrent writers of one table write the same bytes.
    """
    opts = {"AWS_REGION": region, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    if endpoint_url:
        opts["AWS_ENDPOINT_URL"] = endpoint_url
        if urlparse(endpoint_url).scheme == "http":
            opts["AWS_ALLOW_HTTP"] = "true"
    if access_key and secret_key:
        opts["AWS_ACCESS_KEY_ID"] = access_key
        opts["AWS_SECRET_ACCESS_KEY"] = secret_key
    return opts
