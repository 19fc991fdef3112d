import pytest

from llama_platform.sources.repos import RepoListError, load_repos, parse_repo_key


def test_yaml_list_gives_sorted_unique_keys(tmp_path):
    f = tmp_path / "repos.yaml"
    f.write_text("repos:\n  - {source: github, repo: octo/b}\n  - {source: gitee, repo: zh/a}\n  - {source: github, repo: octo/b}\n")
    assert load_repos(f) == ["gitee:zh/a", "github:octo/b"]


def test_override_wins_over_file(tmp_path):
    assert load_repos(tmp_path / "missing.yaml", ["github:x/y"]) == ["github:x/y"]


@pytest.mark.parametrize("bad", ["gitlab:x/y", "github:noslash", "github:a/b/c", "github:a b/c"])
def test_bad_keys_are_refused(bad):
    with pytest.raises(RepoListError):
        parse_repo_key(bad)


def test_bad_file_is_a_clear_error(tmp_path):
    f = tmp_path / "repos.yaml"
    f.write_text("repos:\n  - {repo: octo/b}\n")
    with pytest.raises(RepoListError, match="needs 'source' and 'repo'"):
        load_repos(f)
    with pytest.raises(RepoListError, match="not found"):
        load_repos(tmp_path / "nope.yaml")
