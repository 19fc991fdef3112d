"""A second `llama-platform run` with nothing changed, against the first (issue 10: at least 5x faster,
no new model version).

    .venv/bin/python benchmarks/second_run.py [--scale 0.15] [--train-steps 60]

Generates a replay corpus, serves it with the replay forge, and runs the whole pipeline twice in
the same process on a fresh local home (local store, sqlite Dagster instance and MLflow): the first
run builds everything, the second asks the forge for changes and skips stages whose inputs and
code are unchanged. Prints both wall times, the ratio, what each run built, and the number of
registered model versions after each.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagster import instance_for_test  # noqa: E402

from llama_platform.cli import run_pipeline  # noqa: E402
from llama_platform.replay.corpus import corpus_repos  # noqa: E402
from llama_platform.replay.forge import ReplayForgeServer  # noqa: E402
from llama_platform.replay.generator import write_corpus  # noqa: E402
from llama_platform.resources.serving import stop_endpoint  # noqa: E402
from llama_platform.services import free_port  # noqa: E402
from llama_platform.settings import load_settings  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", type=float, default=0.15)
    p.add_argument("--train-steps", type=int, default=60)
    args = p.parse_args()
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_corpus(tmp / "corpus", scale=args.scale)
        with ReplayForgeServer(tmp / "corpus") as forge:
            env = {
                "LLAMA_PLATFORM_HOME": str(tmp / "home"),
                "LLAMA_PLATFORM_REPLAY_URL": forge.url,
                "LLAMA_PLATFORM_CORPUS_DIR": str(tmp / "corpus"),
                "LLAMA_PLATFORM_REPOS": ",".join(corpus_repos(tmp / "corpus")),
                "LLAMA_PLATFORM_API_KEY": "benchmark-key-0123456789",
                "LLAMA_PLATFORM_SERVE_PORT": str(free_port()),
                "LLAMA_PLATFORM_TRAIN_STEPS": str(args.train_steps),
            }
            os.environ.update(env)
            settings = load_settings(env)
            client = mlflow.tracking.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)

            def versions() -> int:
                return len(client.search_model_versions(f"name='{settings.registered_model_name}'"))

            (tmp / "dagster").mkdir()
            try:
                with instance_for_test(temp_dir=str(tmp / "dagster")) as instance:
                    first = run_pipeline(settings, instance=instance)
                    v1 = versions()
                    second = run_pipeline(settings, instance=instance)
                    v2 = versions()
            finally:
                stop_endpoint(settings.home / "serving")
    print(f"first run:  {first['seconds']:7.1f} s  built {first['built']}  model versions {v1}")
    print(f"second run: {second['seconds']:7.1f} s  built {second['built'] or 'nothing'}  model versions {v2}")
    print(f"ratio first/second: {first['seconds'] / second['seconds']:.1f}x")


if __name__ == "__main__":
    main()
