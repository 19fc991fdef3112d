import re

import pytest

from llama_platform.data import pii, secrets
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
    assert counts["SECRET:PrivateKey"] == 1 and counts["SECRET:Password"] == 1 and counts["SECRET:SlackToken"] == 1
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
        "SECRET:Password",
        "SECRET:SlackToken",
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
        ("123456789:" + "AA" + "b1_C" * 8 + "x", "SECRET:TelegramBotToken"),
        ("eyJ" + "hbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxIn0.c2lnbmF0dXJlX3BhcnQ", "SECRET:JSONWebToken"),
        ("sk_" + "live_" + "a1B2" * 6, "SECRET:StripeAccessToken"),
        ("SG" + "." + "a1B" * 7 + "c" + "." + "d2E" * 14 + "f", "SECRET:SendgridApiToken"),
        ("sk-" + "a1B" * 7 + "T3Blbk" + "FJ" + "c2D" * 7, "SECRET:OpenAIKey"),
        ("//registry.npmjs.org/:_auth" + "Token=npm_" + "a1B2c3" * 6, "SECRET:NpmAccessToken"),
        ("gl" + "pat-" + "x1Y2z3" * 4, "SECRET:GitLabToken"),
        ("github" + "_pat_" + "A1b2C3d4E5f6G7h8I9j0K1" + "_" + "x9Y8z7" * 9 + "w6Q7v", "SECRET:GitHubToken"),
        ("hf" + "_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH", "SECRET:HuggingfaceAccessToken"),
        ('api_key = "' + "k9" * 10 + '"', None),
        ("mysql -uroot -p" + "S3cr3t!pw", "SECRET:Password"),
        ("Authorization: Basic " + "YWRtaW46czNjcjN0UGFzcw==", "SECRET:AuthorizationHeader"),
    ],
)
def test_provider_and_prose_secrets_pass_the_prefilter(secret, kind):
    # The Hyperscan prefilter is a shortcut; it must never hide a secret a rule would find.
    text = f"Some context before.\nvalue: {secret}\nand after."
    found = find_secrets(text)
    assert found and all(k.startswith("SECRET:") for k in found), found
    if kind:
        assert kind in found
    clean, counts = redact(text)
    assert find_secrets(clean) == [] and sum(counts.values()) >= 1
    value = secret.split("=", 1)[-1].split(" ")[-1].strip('"')
    assert value not in clean


@pytest.mark.parametrize(
    "line",
    [
        'db_password: "' + "hunter2" + "x9" * 4 + '"',  # key: "value"
        "client_secret != 'q" + "7w" * 6 + "'",  # key != 'value'
        'auth_key => "' + "z1" * 8 + '"',  # key => "value"
        "Password\t=\t`" + "s3" * 8 + "`",  # odd spacing and backquotes
        "DB_PASSWORD=" + "hunter2",  # a .env line
        "spring.datasource.password=" + "Pa55w0rd!",
        "Server=db;User Id=sa;Password=" + "Xy7!pQ2z" + ";",
    ],
)
def test_credential_assignments_are_redacted(line):
    text = f"Some context before.\n{line}\nand after."
    assert find_secrets(text), line
    clean, counts = redact(text)
    assert sum(counts.values()) == 1 and find_secrets(clean) == []


@pytest.mark.parametrize(
    "line",
    [
        'db_pa\u017f\u017fword = "' + "hunter2" * 2 + '"',  # long s: re's IGNORECASE matches it as "s"
        'api_\u212aey = "' + "k9Q" * 6 + '"',  # Kelvin sign: matches "k"
    ],
)
def test_case_folding_characters_do_not_slip_past_the_prefilter(line):
    # Hyperscan's caseless matching and Python's differ on a few non-ASCII letters: such texts
    # skip the prefilter and run every rule.
    assert secrets.candidates(f"context\n{line}\nmore") is None
    assert find_secrets(f"context\n{line}\nmore")


def _corpus_texts() -> list[str]:
    from pathlib import Path

    from llama_platform.replay.corpus import load_corpus

    texts = []
    for dump in load_corpus(Path(__file__).resolve().parents[2] / "llama_platform" / "replay" / "corpus"):
        for item in dump["issues"] + dump["comments"]:
            if isinstance(item.get("body"), str):
                texts.append(item["body"])
    return texts


def _own_real_regexes() -> dict[str, list[re.Pattern]]:
    """The regexes each prefilter name stands for (what `_own_spans` and `pii_spans` run)."""
    own = {
        "private_key": [secrets._PRIVATE_KEY_BEGIN], "putty": [secrets._PUTTY_KEY],
        "url_credentials": [secrets._URL_CREDENTIALS], "jwt": [secrets._JWT], "auth_header": [secrets._AUTH_HEADER],
        "password_flag": [secrets._PASSWORD_FLAG], "assignment": [secrets._ASSIGNMENT, secrets._GLUED_PASSWORD], "aws_secret": [secrets._AWS_SECRET],
        "password_prose": [secrets._PASSWORD_PROSE, secrets._PASSWORD_SENTENCE], "password_i18n": [secrets._PASSWORD_I18N], "cli_password": [secrets._CLI_PASSWORD], "htpasswd": [secrets._HTPASSWD], "pgpass": [secrets._PGPASS],
        "netrc": [secrets._NETRC], "xml_secret": [secrets._XML_SECRET], "k8s_env": [secrets._K8S_ENV],
        "k8s_secret": [secrets._K8S_SECRET_KIND], "url_key": [secrets._URL_KEY],
        "pii:email_obfuscated": [pii._OBFUSCATED_EMAIL], "pii:email_spelled": [pii._SPELLED_EMAIL],
        "pii:email": [pii._EMAIL], "pii:ipv4": [pii._IPV4], "pii:card": [pii._CARD], "pii:iban": [pii._IBAN],
        "pii:national_id": [pii._CN_RIC, pii._SSN], "pii:phone": [pii._PHONE],
    }  # fmt: skip
    own.update({name: [rx] for name, rx in secrets._provider_regexes().items()})
    return own


def test_prefilter_is_a_superset_of_every_pattern_on_the_corpus():
    # Every pattern that matches a text must be among the prefilter's candidates for that text.
    from llama_platform_tests.data.redaction_cases import cases

    texts = _corpus_texts() + [c.text for c in cases(per_secret=2, per_pii=3, per_negative=1)]
    rules = secrets.betterleaks_rules()
    names = [name for name, _, _ in secrets._patterns()]
    own = _own_real_regexes()
    assert set(own) | {"context_token", "pii:ipv6"} >= set(names[len(rules):])
    matched = 0
    for text in texts:
        hits = secrets.candidates(text)
        assert hits is not None
        for rule_id, rule in enumerate(rules):
            if rule.regex.search(text):
                matched += 1
                assert rule_id in hits, (rule.kind, text[:200])
        for name, regexes in own.items():
            if any(rx.search(text) for rx in regexes):
                matched += 1
                assert names.index(name) in hits, (name, text[:200])
    assert matched > 500  # the corpus and the labelled set plant secrets: the check is not vacuous


def test_every_betterleaks_rule_compiles_in_hyperscan():
    # One scan for all patterns only holds if none has to run on every text.
    assert len(secrets.betterleaks_rules()) > 400  # hundreds of provider rules
    _, always = secrets._prefilter()
    assert always == ()


def test_prefilter_rules_out_most_patterns_on_plain_prose():
    hits = secrets.candidates("The build fails on Windows when the path has spaces.\nSteps: run make.")
    assert hits is not None and len(hits) <= 2


def test_url_credentials_are_redacted_whatever_the_password_holds():
    # No e-mail-shaped text here ("!" before the "@"): the credentials are still found.
    clean, counts = redact("clone https://alice:s3cr3t!@github.com/x and go")
    assert "alice" not in clean and "s3cr3t" not in clean
    assert counts == {"SECRET:BasicAuthCredentials": 1}


@pytest.mark.parametrize("separator", ["\u2028", "\x85", "\x0c", "\x1c"])
def test_characters_re_and_hyperscan_read_differently_run_every_pattern(separator):
    # Python's \v is only \x0b (Hyperscan's is all vertical space); such texts skip the prefilter.
    text = f'password = "pass{separator}word{separator}1234"'
    assert secrets.candidates(text) is None
    assert find_secrets(text) == ["SECRET:Password"]


def test_prefilter_cache_folder_is_private():
    import os
    import stat

    folder = secrets.private_cache_dir()
    assert folder is not None and folder.stat().st_uid == os.getuid()
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0


# --- Round 2: formats that leaked after issue 9 (values assembled at runtime, as above) ---------

WEAK = "hunter" + "42"  # a low-entropy password: what people type
STRONG = "Sup3r" + "S3cret!"


@pytest.mark.parametrize(
    "line, password",
    [
        (f"docker login -u bob -p {STRONG}", STRONG),
        (f"podman login -u bob -p {WEAK} quay.io", WEAK),
        (f"helm registry login ghcr.io -u ci -p={WEAK}", WEAK),
        (f"oc login https://api.example.com:6443 -u dev -p {WEAK}", WEAK),
        (f"mysqladmin -u root -p{WEAK} status", WEAK),
        (f"sshpass -p {WEAK} ssh deploy@build", WEAK),
        (f"redis-cli -h cache -a {WEAK} ping", WEAK),
        (f"curl -u bob:{WEAK} https://api.example.com", WEAK),
        (f"mytool --password={WEAK} run", WEAK),
        (f"htpasswd -b /etc/nginx/.htpasswd bob {WEAK}", WEAK),
        (f"htpasswd -nbB bob {WEAK}", WEAK),
        (f'psql "postgresql://bob:{WEAK}@db/app"', WEAK),
        (f"ldapsearch -x -D cn=admin,dc=example,dc=org -w {WEAK} -b dc=example,dc=org", WEAK),
        (f"smbclient //fs/share -U bob%{WEAK}", WEAK),
        (f"mongosh -u bob -p {WEAK} --authenticationDatabase admin", WEAK),
        (f"rabbitmqctl add_user bob {WEAK}", WEAK),
        (f"npm config set //npm.example.com/:_authToken {WEAK}", WEAK),
        (f"sqlcmd -S db -U sa -P {WEAK} -Q 'select 1'", WEAK),
        (f"keytool -list -keystore ks.jks -storepass {WEAK}", WEAK),
        (f"7z x a.7z -p{WEAK}", WEAK),
        (f"lftp -u bob,{WEAK} ftp.example.com", WEAK),
        (f"echo '{WEAK}' | sudo -S apt update", WEAK),
        (f"db.example.com:5432:app:bob:{WEAK}", WEAK),  # ~/.pgpass
        (f"java -Djavax.net.ssl.keyStorePassword={WEAK} -jar app.jar", WEAK),
        (f"influx -username bob -password {WEAK}", WEAK),
    ],
)
def test_password_flags_of_other_clis_are_redacted(line, password):
    clean, counts = redact(f"I ran\n{line}\nand it failed.")
    assert password not in clean and counts, clean
    assert find_secrets(clean) == []


@pytest.mark.parametrize(
    "line",
    [
        "docker run -p 8080 nginx", "docker run -p 8080:80 nginx", "podman run -p 127.0.0.1:8080:80/tcp app",
        "python -p foo.py", "mkdir -p build/dir", "git log -p", "ssh -p 22 host", "tar -p -xf a.tar",
        "docker login -u ci --password-stdin registry.example.com", "docker login -u ci -p $CI_TOKEN $CI_REGISTRY",
        "mysql -u root -p", "htpasswd -c .htpasswd bob", "ldapsearch -x -W -b dc=example,dc=org", "ps -p 1234",
        "zip -r a.zip dir", "7z a -p archive.7z files", "gcc -pthread -o x", "python -m pytest -p no:cacheprovider",
        "at 10:20:30:40:50 UTC", "echo $PASS | docker login --password-stdin", "aws configure set region us-east-1",
    ],
)  # fmt: skip
def test_cli_flags_that_take_no_password_are_kept(line):
    assert redact(line) == (line, {})


@pytest.mark.parametrize(
    "line, password",
    [
        (f"PGPASSWORD={WEAK} psql -h db", WEAK),
        (f"PGPASSWORD='{WEAK}' pg_dump app", WEAK),
        ("export MYSQL_PWD=" + "123456", "123456"),
        ("MYSQL_ROOT_PASSWORD: " + "root", "root"),
        ("    environment:\n      - POSTGRES_PASSWORD=" + "postgres1", "postgres1"),
        ("REDIS_PASSWORD=" + "abc", "abc"),
        ("SMTP_PASSWD=" + "letmein", "letmein"),
        ("env:\n- name: POSTGRES_PASSWORD\n  value: " + WEAK, WEAK),
        ("$env:PGPASSWORD = '" + WEAK + "'", WEAK),
    ],
)
def test_password_variables_are_redacted_whatever_their_entropy(line, password):
    clean, counts = redact(line)
    assert password not in clean and counts == {"SECRET:Password": 1}, clean


@pytest.mark.parametrize(
    "line",
    [
        "PGPASSWORD=${PGPASSWORD} psql", "DB_PASSWORD=<password>", "DB_PASSWORD=***", "DB_PASSWORD=", "MYSQL_PWD=xxx",
        "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}", "POSTGRES_PASSWORD=changeme", "REDIS_PASSWORD=%REDIS_PASSWORD%",
        "PASSWORD_FILE=/run/secrets/db", "PWD=/home/bob\nOLDPWD=/tmp", "BYPASS=abc123", "password_min_length: 12",
        "env:\n- name: DB_PASSWORD\n  valueFrom:\n    secretKeyRef:\n      name: db", "- name: LOG_LEVEL\n  value: debug",
    ],
)  # fmt: skip
def test_password_variable_placeholders_and_look_alikes_are_kept(line):
    assert redact(line) == (line, {})


@pytest.mark.parametrize(
    "address",
    [
        "john [at] example [dot] com", "jane.doe(at)example.org", "bob at example dot com", "name\uff20example.com",
        "jane dot doe at mail dot example dot com", "alice{at}example{dot}org", "ADMIN AT EXAMPLE DOT ORG",
    ],
)  # fmt: skip
def test_obfuscated_emails_are_redacted(address):
    assert redact(f"Contact: {address} if it breaks.") == ("Contact: <EMAIL> if it breaks.", {"EMAIL": 1})


@pytest.mark.parametrize(
    "text",
    [
        "Have a look at example dot com", "look at example", "meet at 5 dot 30", "Point at the dot product",
        "I am good at python dot net", "stared at foo.bar.com", "np.dot(a, b) at index 0", "It works at example.com.",
        "https://ci-bot@bitbucket.org/acme/app.git", "ssh://git@github.com/acme/app.git",
    ],
)  # fmt: skip
def test_prose_around_at_and_dot_is_kept(text):
    assert redact(text) == (text, {})


def test_a_key_as_url_user_name_is_a_secret_not_an_email():
    import random

    key = "%032x" % random.Random(3).getrandbits(128)  # a Sentry DSN's public key: 32 hex
    clean, counts = redact(f"SENTRY_DSN=https://{key}@o123.ingest.sentry.io/456")
    assert clean == "SENTRY_DSN=https://<SECRET:URLCredentials>@o123.ingest.sentry.io/456"
    assert counts == {"SECRET:URLCredentials": 1}


@pytest.mark.parametrize(
    "text, values",
    [
        (f"machine api.example.com login bob password {WEAK}", [WEAK]),
        (f"machine github.com\n  login bob\n  password {WEAK}", [WEAK]),
        (f"<server>\n  <id>nexus</id>\n  <password>{WEAK}</password>\n</server>", [WEAK]),
        (f"kind: Secret\nstringData:\n  admin-password: {WEAK}\n  note: |\n    {STRONG}\n", [WEAK, STRONG]),
        ("apiVersion: v1\nkind: Secret\ndata:\n  password: " + "aHVudGVyNDI=" + "\n  DATABASE_URL: " + "cG9zdGdyZXM6Ly9h",
         ["aHVudGVyNDI=", "cG9zdGdyZXM6Ly9h"]),
        (f"Server=tcp:db,1433;Database=shop;User ID=sa;Password={WEAK};", [WEAK]),
        (f"jdbc:postgresql://db/app?user=bob&password={WEAK}&ssl=true", [WEAK]),
        (f"kubectl create secret generic db --from-literal=password={WEAK}", [WEAK]),
    ],
)  # fmt: skip
def test_credentials_in_config_files_are_redacted(text, values):
    clean, counts = redact(text)
    assert counts and not any(v in clean for v in values), clean
    assert find_secrets(clean) == []


def test_kubernetes_secret_rule_reads_only_secret_documents():
    text = "kind: ConfigMap\ndata:\n  LOG_LEVEL: debug\n---\nkind: Secret\ndata:\n  token: " + "c2VjcmV0" + "\n"
    clean, counts = redact(text)
    assert clean == "kind: ConfigMap\ndata:\n  LOG_LEVEL: debug\n---\nkind: Secret\ndata:\n  token: <SECRET:KubernetesSecret>\n"


@pytest.mark.parametrize(
    "line, password",
    [
        ("auth:\n  username: admin\n  password: " + "letmein", "letmein"),  # a config line: a value, not prose
        ("- password: " + "letmein", "letmein"),
        ("pw: " + WEAK, WEAK),
        ("JWT_SECRET=" + "supersecret1", "supersecret1"),
        ("Passwort: " + WEAK, WEAK),
        ("mot de passe : " + WEAK, WEAK),
        ("Пароль: " + "981622", "981622"),
        ("vault login s." + "Ab12Cd34Ef56Gh78", "Ab12Cd34Ef56Gh78"),
        (f"the password {WEAK} does not work", WEAK),
        ("Password" + "123 was my password", "Password" + "123"),
        ("client_secret=" + WEAK, WEAK),
    ],
)
def test_other_password_forms_are_redacted(line, password):
    clean, counts = redact(line)
    assert password not in clean and counts, clean
    assert find_secrets(clean) == []


@pytest.mark.parametrize(
    "line",
    [
        "Password: incorrect", "password: required", "Passwort: falsch", "Mot de passe : oublié ?", "pw = getpass()",
        "password: str", "PASSWORD = settings.PASSWORD", "db_password = get_password()", "if new_password == old_password:",
        "vault login -method=userpass username=$USER", "SECRET_KEY=${SECRET_KEY}", "The password: it is required",
        "the password field does not work", "This is my password", "changeme is the default password", "client_secret: str",
    ],
)  # fmt: skip
def test_prose_and_code_about_passwords_are_kept(line):
    assert redact(line) == (line, {})
