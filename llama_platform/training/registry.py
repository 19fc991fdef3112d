"""Base models in the object store, addressed by content: `llama-platform models import PATH`.

An imported model lives at `<store>/models/<name>/<model_hash>/` in Hugging Face layout, next to
`llama-platform-manifest.json`: every file's sha256 and size, and the model hash (sha256 of the
sorted "path sha256" lines). A training config names the model by that URI and hash; loading
recomputes the hashes of what it read and refuses anything else, so a run's logged hash says
exactly which weights it started from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from llama_platform.training import storage

MANIFEST_FILE = "llama-platform-manifest.json"
# A model folder needs these (weights: model.safetensors or shards + index).
REQUIRED = ("config.json",)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


def file_sha256(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(folder: str | Path) -> dict:
    """Per-file sha256 + size of a model folder and the model hash over them."""
    folder = Path(folder)
    files = {
        rel: {"sha256": file_sha256(folder / rel), "size": (folder / rel).stat().st_size}
        for rel in storage.list_files(str(folder))
        if rel != MANIFEST_FILE and not rel.startswith(".")
    }
    check_layout(files, str(folder))
    return {"model_hash": model_hash(files), "files": files}


def model_hash(files: dict[str, dict]) -> str:
    lines = "".join(f"{rel} {info['sha256']}\n" for rel, info in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def check_layout(files: dict | list, where: str) -> None:
    names = set(files)
    missing = [n for n in REQUIRED if n not in names]
    has_weights = "model.safetensors" in names or "model.safetensors.index.json" in names
    if not has_weights:
        missing.append("model.safetensors or model.safetensors.index.json (+ shards)")
    if not any(n in names for n in TOKENIZER_FILES):
        missing.append("a tokenizer (tokenizer.json)")
    if missing:
        raise ValueError(f"{where} is not a Hugging Face model folder: missing {missing}")


def verify(folder: str | Path, expected_hash: str | None = None) -> dict:
    """Hash a local model folder; compare with its manifest (if any) and `expected_hash`.

    Returns the manifest of what is on disk. Raises ValueError naming the first mismatch.
    """
    folder = Path(folder)
    actual = build_manifest(folder)
    shards = _index_shards(folder)
    missing_shards = sorted(shards - set(actual["files"]))
    if missing_shards:
        raise ValueError(f"{folder}: the safetensors index names missing shards {missing_shards[:3]}")
    manifest_path = folder / MANIFEST_FILE
    if manifest_path.is_file():
        recorded = json.loads(manifest_path.read_text())
        for rel, info in recorded["files"].items():
            got = actual["files"].get(rel)
            if got is None:
                raise ValueError(f"{folder}: {rel} is listed in the manifest but missing")
            if got["sha256"] != info["sha256"]:
                raise ValueError(f"{folder}: {rel} has sha256 {got['sha256'][:12]}…, manifest says {info['sha256'][:12]}…")
        extra = sorted(set(actual["files"]) - set(recorded["files"]))
        if extra:
            raise ValueError(f"{folder}: files not in the manifest: {extra[:3]}")
    if expected_hash and actual["model_hash"] != expected_hash:
        raise ValueError(f"{folder}: model hash {actual['model_hash']} != expected {expected_hash}")
    return actual


def _index_shards(folder: Path) -> set[str]:
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return set()
    return set(json.loads(index.read_text())["weight_map"].values())


def import_model(path: str | Path, store_uri: str, name: str | None = None, client=None) -> dict:
    """Upload a local model folder to `<store_uri>/models/<name>/<model_hash>/` with its manifest.

    Idempotent: a model already there under the same hash is not uploaded again.
    Returns {"name", "model_hash", "uri", "files", "bytes", "uploaded"}.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    manifest = verify(folder)
    name = name or json.loads((folder / "config.json").read_text()).get("_name_or_path") or folder.name
    name = Path(str(name)).name or folder.name
    digest = manifest["model_hash"]
    uri = storage.join(store_uri, "models", name, digest)
    marker = storage.join(uri, MANIFEST_FILE)
    uploaded = False
    # The manifest goes last: its presence means the upload finished.
    if not storage.exists(marker, client=client):
        storage.upload_dir(folder, uri, client=client, skip=(MANIFEST_FILE,))
        storage.write_text(marker, json.dumps(manifest, indent=2, sort_keys=True), client=client)
        uploaded = True
    # A human-friendly pointer; configs name the hashed URI, never "latest".
    storage.write_text(storage.join(store_uri, "models", name, "latest.json"),
                       json.dumps({"model_hash": digest, "uri": uri}), client=client)
    return {
        "name": name,
        "model_hash": digest,
        "uri": uri,
        "files": len(manifest["files"]),
        "bytes": sum(f["size"] for f in manifest["files"].values()),
        "uploaded": uploaded,
    }
