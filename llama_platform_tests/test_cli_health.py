"""`make ui` / `make run` record whether the endpoint answers: with nothing listening, the
deployed_endpoint's endpoint_answers check fails and says so; a run interrupted mid-way leaves no
run marked STARTED."""

from __future__ import annotations

from dagster import AssetCheckKey, AssetKey, DagsterRunStatus, instance_for_test

from llama_platform.cli import LAUNCHED_BY_TAG, cancel_inflight_runs, record_endpoint_health
from llama_platform.services import free_port
from llama_platform.settings import load_settings


def test_endpoint_check_fails_when_nothing_listens(tmp_path):
    settings = load_settings({"LLAMA_PLATFORM_HOME": str(tmp_path / "home"),
                              "LLAMA_PLATFORM_SERVE_PORT": str(free_port())})
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        assert record_endpoint_health(settings, instance) is False
        key = AssetCheckKey(AssetKey("deployed_endpoint"), "endpoint_answers")
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        evaluation = record.event.dagster_event.event_specific_data
        assert evaluation.passed is False
        assert "nothing answers" in evaluation.description


def test_interrupted_runs_are_marked_canceled(tmp_path):
    from dagster import job, op

    @op
    def noop():
        return 1

    @job
    def some_stage():
        noop()

    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        mine = instance.create_run_for_job(some_stage, tags={LAUNCHED_BY_TAG: "run (pid 1)"})
        other = instance.create_run_for_job(some_stage, tags={LAUNCHED_BY_TAG: "run (pid 2)"})
        for run in (mine, other):
            instance.handle_run_event(run.run_id, _started_event(run))
        assert instance.get_run_by_id(mine.run_id).status == DagsterRunStatus.STARTED
        assert cancel_inflight_runs(instance, "run (pid 1)") == [mine.run_id]
        assert instance.get_run_by_id(mine.run_id).status == DagsterRunStatus.CANCELED
        assert instance.get_run_by_id(other.run_id).status == DagsterRunStatus.STARTED  # not ours
        assert cancel_inflight_runs(instance, None) == [other.run_id]  # after the daemon stopped: all


def _started_event(run):
    from dagster._core.events import DagsterEvent, DagsterEventType

    return DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name)
