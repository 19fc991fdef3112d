import pytest

from llama_platform.data.bots import is_bot, is_bot_invocation


@pytest.mark.parametrize(
    "login, user_type",
    [
        ("dependabot[bot]", "Bot"),
        ("github-actions[bot]", None),
        ("renovate", "User"),
        ("codecov-bot", None),
        ("my-org-ci", None),
        ("k8s-ci-robot", None),
        ("someone", "Bot"),
        ("Dependabot", None),
    ],
)
def test_bots_are_recognised(login, user_type):
    assert is_bot(login, user_type)


@pytest.mark.parametrize("login", ["alice", "robotics-fan", "abbot", "cicada", "bob_the_builder", None, ""])
def test_humans_are_not_bots(login):
    assert not is_bot(login, "User")


@pytest.mark.parametrize(
    "body",
    [
        "@dependabot rebase",
        "@dependabot recreate\n",
        "/retest",
        "/lgtm\n/approve",
        "/assign @alice",
        "@pre-commit-ci autofix",
        "bors r+",
        "@mergifyio refresh",
    ],
)
def test_bot_invocations(body):
    assert is_bot_invocation(body)


@pytest.mark.parametrize(
    "body",
    [
        "@alice could you rebase?",
        "@dependabot rebase\nAlso, the failure above is in the parser, see the trace.",
        "/usr/bin/python crashes on start",
        "I ran /retest but it still fails because of the flaky network test in CI",
        "",
        None,
        "LGTM",
    ],
)
def test_human_comments_are_not_invocations(body):
    assert not is_bot_invocation(body)
