"""Shared fixtures: real local services started by the tests and stopped afterwards."""

from __future__ import annotations

import re
import secrets

import pytest

from llama_platform_tests.support.seaweedfs import S3Server, start_seaweedfs

# The replay forge fixtures serve both sources/ (connectors) and replay/ (the forge itself).
pytest_plugins = ["llama_platform_tests.support.replay_fixtures"]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.process.stop()


@pytest.fixture()
def s3_bucket(s3_server: S3Server, request) -> str:
    # Bucket names allow only [a-z0-9-]: parametrized ids like "test_x[s3]" must be cleaned.
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    s3_server.make_bucket(name)
    return name
