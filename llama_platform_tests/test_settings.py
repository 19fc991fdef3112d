import pytest

from llama_platform.settings import SettingsError, load_settings


def test_defaults_are_local_and_under_home(tmp_path):
    s = load_settings({"LLAMA_PLATFORM_HOME": str(tmp_path)})
    assert s.profile == "local"
    assert s.store_url == (tmp_path / "store").as_uri()
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert s.dagster_home == tmp_path / "dagster_home"
    assert s.secrets_present == frozenset()


def test_replay_url_points_both_forges_at_the_replay_server(tmp_path):
    s = load_settings({"LLAMA_PLATFORM_HOME": str(tmp_path), "LLAMA_PLATFORM_REPLAY_URL": "http://127.0.0.1:9"})
    assert s.github_api_url == "http://127.0.0.1:9/github"
    assert s.gitee_api_url == "http://127.0.0.1:9/gitee/api/v5"


def test_secrets_are_tracked_by_name_only(tmp_path):
    s = load_settings({"LLAMA_PLATFORM_HOME": str(tmp_path), "GITHUB_TOKEN": "ghp_secretvalue"})
    assert s.secrets_present == frozenset({"GITHUB_TOKEN"})
    assert "ghp_secretvalue" not in repr(s)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"LLAMA_PLATFORM_PROFILE": "prod"}, "LLAMA_PLATFORM_PROFILE"),
        ({"LLAMA_PLATFORM_STORE_URL": "gs://bucket"}, "file:// or s3://"),
        ({"LLAMA_PLATFORM_TRAIN_STEPS": "many"}, "integer"),
    ],
)
def test_bad_settings_fail_clearly(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_packaged_instance_config_matches_the_repo_one():
    # `llama-platform run` falls back to the packaged copy when installed without the repo checkout.
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert (root / "dagster.yaml").read_text() == (root / "llama_platform" / "dagster.yaml").read_text()
