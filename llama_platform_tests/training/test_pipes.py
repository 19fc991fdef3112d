"""train.py as a subprocess under Dagster Pipes: logs and the materialization reach Dagster."""

import sys
from pathlib import Path

import dagster as dg

from llama_platform_tests.training.conftest import short_config

PIPES_STEPS = 20


def _training_asset(config_path: Path):
    """A throwaway asset that runs the training entrypoint the way finetuned_checkpoint does."""

    @dg.asset
    def tiny_checkpoint(context: dg.AssetExecutionContext, pipes_client: dg.PipesSubprocessClient):
        return pipes_client.run(
            command=[sys.executable, "-m", "llama_platform.training.train", "--config", str(config_path)],
            context=context,
        ).get_materialize_result()

    return tiny_checkpoint


def test_train_under_dagster_pipes(tmp_path, training_set_path):
    config = short_config(tmp_path, training_set_path, max_steps=PIPES_STEPS, log_every=5, warmup_steps=2,
                          registered_model_name="triage-pipes-test")
    config_path = tmp_path / "train_config.json"
    config.save(config_path)

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [_training_asset(config_path)],
            resources={"pipes_client": dg.PipesSubprocessClient(cwd=str(tmp_path))},
            instance=instance,
        )
        assert result.success
        logs = [entry.user_message for entry in instance.all_logs(result.run_id)]

    assert any(f"step {PIPES_STEPS}/{PIPES_STEPS} loss" in m for m in logs), logs[-20:]
    assert any("val loss" in m for m in logs)

    [materialization] = result.asset_materializations_for_node("tiny_checkpoint")
    md = materialization.metadata
    assert md["steps"].value == PIPES_STEPS
    assert md["final_loss"].value < md["first_loss"].value
    assert md["tokens_per_second"].value > 0
    assert md["model_name"].value == "triage-pipes-test"
    assert md["model_version"].value == 1
    assert md["model_uri"].value == "models:/triage-pipes-test/1"
    assert len(md["mlflow_run_id"].value) == 32
    assert isinstance(md["loss_curve_path"], dg.PathMetadataValue)
    assert Path(md["loss_curve_path"].value).is_file()
    # Same facts on disk when launched by Dagster.
    assert (Path(config.output_dir) / "result.json").is_file()


def test_bad_config_fails_the_pipes_run_with_its_reason(tmp_path):
    config_path = tmp_path / "train_config.json"
    config_path.write_text('{"training_set_path": "x", "output_dir": "o", "mlflow_tracking_uri": "file:///m"}')

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [_training_asset(config_path)],
            resources={"pipes_client": dg.PipesSubprocessClient(cwd=str(tmp_path))},
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        text = "\n".join(
            str(entry.dagster_event.event_specific_data) if entry.dagster_event else entry.user_message
            for entry in instance.all_logs(result.run_id)
        )
    # The child's exception travels over Pipes, so the run log says why, not just "exit code 1".
    assert "file: URI" in text
