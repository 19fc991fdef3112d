import re

import pytest
from detect_secrets.plugins.keyword import QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP

from llama_platform.data.redaction import (
    find_secrets,
    pseudonymise,
    redact,
    replace_mentions,
)

# Fake secrets are assembled at runtime so no secret-shaped literal sits in the repository.
GH_TOKEN = "gh" + "p_" + "Ab1" * 12
AWS_KEY = "AK" + "IA" + "Q3EGUOV7PLZJ4XWT"
AWS_SECRET = "wJalrXUtnFEMI" + "/K7MDENG/bPxRfiCYzEXAMPLEKEY1"
SLACK = "xo" + "xb-" + "123456789012-abcdefghijkl"
PRIVATE_KEY = (
    "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx3n\nq9Zt7dWc0mFh\n-----END " + "RSA PRIVATE KEY-----"
)

DIRTY = f"""Hi, I'm jane.doe@example.com (backup: jd+issues@corp.example.org).
The server at 203.0.113.7 and fe80::1ff:fe23:4567:890a both fail; localhost 127.0.0.1 is fine.
My token is {GH_TOKEN} and the AWS key {AWS_KEY}
aws_secret_access_key = "{AWS_SECRET}"
slack: {SLACK}
git clone https://deploy:S3cretPass@git.example.com/acme/server.git
db_password = "hunter2hunter2"
{PRIVATE_KEY}
Version 1.2.3 on port 8080 at 12:30:45.
"""


def test_redact_replaces_every_finding_with_a_typed_placeholder():
    clean, counts = redact(DIRTY)
    for secret in (GH_TOKEN, AWS_KEY, AWS_SECRET, SLACK, "S3cretPass", "deploy:", "hunter2hunter2",
                   "MIIEowIBAAKCAQEAx3n", "jane.doe@example.com", "jd+issues", "203.0.113.7", "fe80::1ff"):  # fmt: skip
        assert secret not in clean, secret
    assert "<SECRET:GitHubToken>" in clean
    assert "<SECRET:AWSAccessKey>" in clean
    assert "<SECRET:PrivateKey>" in clean
    assert "https://<SECRET:BasicAuthCredentials>@git.example.com/acme/server.git" in clean
    assert counts["EMAIL"] == 2 and counts["IP_ADDRESS"] == 2
    assert counts["SECRET:PrivateKey"] == 1
    # Harmless text survives.
    assert "127.0.0.1" in clean and "Version 1.2.3 on port 8080 at 12:30:45." in clean


def test_rescan_of_redacted_text_finds_nothing():
    assert set(find_secrets(DIRTY)) >= {
        "EMAIL",
        "IP_ADDRESS",
        "SECRET:GitHubToken",
        "SECRET:AWSAccessKey",
        "SECRET:PrivateKey",
        "SECRET:BasicAuthCredentials",
        "SECRET:SecretKeyword",
    }
    clean, _ = redact(DIRTY)
    assert find_secrets(clean) == []
    # Redaction is idempotent: nothing left to find a second time.
    assert redact(clean) == (clean, {})


def test_unterminated_private_key_block_is_redacted_to_the_paragraph_end():
    text = "key:\n-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\nAAAABG5vbmU\n\nafter"
    clean, counts = redact(text)
    assert "b3BlbnNzaC1rZXk" not in clean and "AAAABG5vbmU" not in clean
    assert clean.endswith("after") and counts == {"SECRET:PrivateKey": 1}


@pytest.mark.parametrize(
    "text",
    [
        "Plain text about a crash in version 2.0.1 with no personal data.",
        "Commit 3f2a9c1b7d4e5f60718293a4b5c6d7e8f9012345 fixed it",  # a SHA is not a secret
        "Install lodash@4.17.21 and @types/node",
        "std::vector<int> at 10:20:30",
        "",
    ],
)
def test_clean_text_is_left_alone(text):
    assert redact(text) == (text, {})
    assert find_secrets(text) == []


def test_pseudonymise_is_stable_case_insensitive_and_salted():
    a = pseudonymise("Alice")
    assert re.fullmatch(r"<USER_[0-9a-f]{6}>", a)
    assert a == pseudonymise("alice")
    assert a != pseudonymise("bob")
    assert a != pseudonymise("alice", salt="pepper")
    assert pseudonymise(None) is None and pseudonymise("") is None


def test_replace_mentions_only_touches_known_logins():
    text = "Thanks @Alice and @bob! cc @carol, see @types/node; mail alice@example.com"
    out = replace_mentions(text, {"alice", "bob"})
    assert out == (
        f"Thanks {pseudonymise('alice')} and {pseudonymise('bob')}! cc @carol, see @types/node; "
        "mail alice@example.com"
    )
    assert replace_mentions("no mentions", {"alice"}) == "no mentions"


def test_pgp_key_block_with_blank_line_is_redacted_whole():
    block = "-----BEGIN PGP " + "PRIVATE KEY BLOCK-----\nVersion: 1\n\nlQOYBGXyz123\n=abcd\n-----END PGP " + "PRIVATE KEY BLOCK-----"
    clean, counts = redact(f"before\n{block}\nafter")
    assert clean == "before\n<SECRET:PrivateKey>\nafter"
    assert counts == {"SECRET:PrivateKey": 1}


@pytest.mark.parametrize(
    "secret, kind",
    [
        ("123456789:" + "Ab1_" * 8 + "xyz", "SECRET:TelegramBotToken"),
        ("M" + "a1" * 12 + "." + "b2c3d4" + "." + "e5" * 13 + "f", "SECRET:DiscordBotToken"),
        ("eyJ" + "hbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "SECRET:JSONWebToken"),
        ("sk_" + "live_" + "a1B2" * 6, "SECRET:StripeAccessKey"),
        ("SG" + "." + "a" * 22 + "." + "b" * 43, "SECRET:SendGridAPIKey"),
        ("sk-" + "a" * 20 + "T3Blbk" + "FJ" + "b" * 20, "SECRET:OpenAIToken"),
        ("//registry.npmjs.org/:_auth" + "Token=npm_" + "a" * 36, "SECRET:NPMtokens"),
        ("gl" + "pat-" + "x" * 20, "SECRET:GitLabToken"),
        ('api_key = "' + "k9" * 10 + '"', "SECRET:SecretKeyword"),
    ],
)
def test_plugin_secrets_pass_the_prefilter(secret, kind):
    # The Hyperscan prefilter is a shortcut; it must never hide a secret the plugin would find.
    text = f"Some context before.\nvalue: {secret}\nand after."
    assert kind in find_secrets(text)
    clean, counts = redact(text)
    assert counts.get(kind) == 1 and find_secrets(clean) == []


@pytest.mark.parametrize(
    "line",
    [
        'db_password: "' + "hunter2" + "x9" * 4 + '"',  # key: "value"
        "client_secret != 'q" + "7w" * 6 + "'",  # key != 'value'
        'auth_key => "' + "z1" * 8 + '"',  # key => "value"
        'private_key_id ' + '"' + "m4" * 8 + '";',  # key "value";
        '"' + "p0" * 8 + '" === apikeyValue',  # "value" === key
        "Password\t=\t`" + "s3" * 8 + "`",  # odd spacing and backquotes
    ],
)
def test_prefilter_never_hides_a_keyword_secret(line):
    text = f"Some context before.\n{line}\nand after."
    # The plugin's own regexes (line by line, as detect-secrets runs them) find it...
    assert any(rx.search(line) for rx in QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
    # ...so the prefiltered scan must too.
    assert "SECRET:SecretKeyword" in find_secrets(text)
    clean, counts = redact(text)
    assert counts.get("SECRET:SecretKeyword") == 1 and find_secrets(clean) == []


@pytest.mark.parametrize(
    "line",
    [
        'db_pa\u017f\u017fword = "' + "hunter2" * 2 + '"',  # long s: re's IGNORECASE matches it as "s"
        'api_\u212aey = "' + "k9" * 6 + '"',  # Kelvin sign: matches "k"
    ],
)
def test_case_folding_characters_do_not_slip_past_the_prefilter(line):
    # Hyperscan's caseless matching is ASCII-and-Unicode simple folding; re's also folds a few
    # non-ASCII letters onto ASCII ones, so detect-secrets' regex matches these lines.
    assert any(rx.search(line) for rx in QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
    assert find_secrets(f"context\n{line}\nmore") == ["SECRET:SecretKeyword"]


def _corpus_texts() -> list[str]:
    from pathlib import Path

    from llama_platform.replay.corpus import load_corpus

    texts = []
    for dump in load_corpus(Path(__file__).resolve().parents[2] / "llama_platform" / "replay" / "corpus"):
        for item in dump["issues"] + dump["comments"]:
            if isinstance(item.get("body"), str):
                texts.append(item["body"])
    return texts


def test_prefilter_is_a_superset_of_every_pattern_on_the_corpus():
    # Every pattern that matches a text (as redaction runs it: per line for the plugins, whole
    # text for ours) must be among the prefilter's candidates for that text.
    from llama_platform.data.redaction import _OWN, _candidates, _rules

    texts = _corpus_texts() + [PRIVATE_KEY, f"ssh root@10.1.2.3 with {GH_TOKEN}", "fe80::1ff:fe23:4567:890a"]
    rules = _rules()
    matched = 0
    for text in texts:
        hits = _candidates(text)
        assert hits is not None
        for rule_id, (_, regex, _) in enumerate(rules):
            if any(regex.search(line) for line in text.split("\n")):
                matched += 1
                assert rule_id in hits, (regex.pattern[:60], text[:200])
        for k, regex in enumerate(_OWN.values()):
            if regex.search(text):
                matched += 1
                assert len(rules) + k in hits, (regex.pattern[:60], text[:200])
    assert matched > 50  # the corpus plants secrets and addresses: the check is not vacuous


def test_prefilter_rules_out_most_patterns_on_plain_prose():
    from llama_platform.data.redaction import _candidates

    hits = _candidates("The build fails on Windows when the path has spaces.\nSteps: run make.")
    assert hits is not None and len(hits) <= 2


def test_url_credentials_are_redacted_whatever_the_password_holds():
    # No e-mail-shaped text here ("!" before the "@"): the credentials are still found.
    clean, counts = redact("clone https://alice:s3cr3t!@github.com/x and go")
    assert "alice" not in clean and "s3cr3t" not in clean
    assert counts == {"SECRET:BasicAuthCredentials": 1}


@pytest.mark.parametrize("separator", ["\u2028", "\x85", "\x0c", "\x1c"])
def test_characters_re_and_hyperscan_read_differently_run_every_pattern(separator):
    # Python's \v is only \x0b (Hyperscan's is all vertical space); such texts skip the prefilter.
    from llama_platform.data.redaction import _candidates

    text = f'password = "pass{separator}word{separator}1234"'
    assert _candidates(text) is None
    assert "SECRET:SecretKeyword" in find_secrets(text)


def test_prefilter_cache_folder_is_private():
    import os
    import stat

    from llama_platform.data.redaction import _private_cache_dir

    folder = _private_cache_dir()
    assert folder is not None and folder.stat().st_uid == os.getuid()
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
