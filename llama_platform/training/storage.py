"""Files of a training run in a local folder or under an object-store prefix (s3://bucket/key).

The trainer runs in a pod that has only the object store: the config, the base model, the
checkpoints all live there. boto3 finds the endpoint and keys itself in the standard AWS_*
variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...; a k8s Secret in the pod), so this module
reads no environment and keeps no credentials.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit


def is_remote(uri: str) -> bool:
    return uri.startswith("s3://")


def local_path(uri: str) -> Path:
    """A plain path or a file:// URI as a Path."""
    return Path(urlsplit(uri).path) if uri.startswith("file://") else Path(uri)


def _split(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parts.netloc, parts.path.lstrip("/")


def _client(client=None):
    """The given client (the CLI builds one from settings), else boto3's default from AWS_*."""
    if client is not None:
        return client
    import boto3

    return boto3.client("s3")


def join(uri: str, *parts: str) -> str:
    if is_remote(uri):
        return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(local_path(uri).joinpath(*parts))


def read_text(uri: str, client=None) -> str:
    if not is_remote(uri):
        return local_path(uri).read_text()
    bucket, key = _split(uri)
    return _client(client).get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def write_text(uri: str, text: str, client=None) -> None:
    if not is_remote(uri):
        local_path(uri).parent.mkdir(parents=True, exist_ok=True)
        local_path(uri).write_text(text)
        return
    bucket, key = _split(uri)
    _client(client).put_object(Bucket=bucket, Key=key, Body=text.encode())


def exists(uri: str, client=None) -> bool:
    if not is_remote(uri):
        return local_path(uri).exists()
    bucket, key = _split(uri)
    found = _client(client).list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return found.get("KeyCount", 0) > 0


def list_files(uri: str, client=None) -> list[str]:
    """Relative paths of every file under a folder / prefix, sorted."""
    if not is_remote(uri):
        root = local_path(uri)
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    bucket, prefix = _split(uri)
    prefix = prefix.rstrip("/") + "/"
    names = []
    for page in _client(client).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        names += [obj["Key"][len(prefix):] for obj in page.get("Contents", [])]
    return sorted(names)


def download_dir(uri: str, dest: str | Path, client=None) -> Path:
    """Copy every file under `uri` into `dest` (a local folder is used in place, not copied)."""
    if not is_remote(uri):
        if not local_path(uri).is_dir():
            raise FileNotFoundError(f"{uri} is not a folder")
        return local_path(uri)
    dest = Path(dest)
    bucket, prefix = _split(uri)
    client = _client(client)
    names = list_files(uri, client=client)
    if not names:
        raise FileNotFoundError(f"nothing under {uri}")
    for name in names:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, f"{prefix.rstrip('/')}/{name}", str(target))
    return dest


def upload_dir(src: str | Path, uri: str, client=None, skip: tuple[str, ...] = ()) -> None:
    """Copy a local folder's files to `uri` (a folder or an s3:// prefix); boto3 does multipart."""
    src = Path(src)
    files = [p for p in sorted(src.rglob("*")) if p.is_file() and p.relative_to(src).as_posix() not in skip]
    if not is_remote(uri):
        if local_path(uri).resolve() == src.resolve():
            return
        for path in files:
            target = local_path(uri) / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        return
    bucket, prefix = _split(uri)
    client = _client(client)
    for path in files:
        client.upload_file(str(path), bucket, f"{prefix.rstrip('/')}/{path.relative_to(src).as_posix()}")


def fetch_file(uri: str, dest: str | Path, client=None) -> Path:
    """A local path for the file at `uri` (downloaded to `dest` when remote)."""
    if not is_remote(uri):
        return local_path(uri)
    bucket, key = _split(uri)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    _client(client).download_file(bucket, key, str(dest))
    return Path(dest)
