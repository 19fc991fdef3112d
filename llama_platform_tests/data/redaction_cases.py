"""A labelled redaction set: secrets and personal data pasted into issue text, and look-alikes to keep.

Every value is generated at run time from a fixed seed in each provider's documented format
(`github_pat_` + 22 + `_` + 59 characters, `AKIA` + 16, Luhn-valid card numbers, Chinese resident
IDs with their MOD 11-2 check digit, IBANs with their mod-97 check digits...): none is real, and no
token-shaped literal sits in the repository for secret scanners to trip on.

A positive passes when none of its `values` survives redaction; a negative when the text comes
back unchanged. Used by test_redaction_quality.py and benchmarks/redaction_quality.py.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass
from typing import Callable

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.cn import ric

SEED = 20261130
AN = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = AN + "+/"
URLSAFE = AN + "-_"


@dataclass(frozen=True)
class Case:
    kind: str  # "github_fine_grained_pat", "phone_cn", "neg_version_quad", ...
    group: str  # "secret", "pii" or "negative"
    text: str
    values: tuple[str, ...] = ()  # what must not survive (positives)


class _Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def s(self, n: int, alphabet: str = AN) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def mixed(self, n: int, alphabet: str = AN) -> str:
        """Random, but with lower, upper and digits all present (as real keys nearly always are)."""
        wanted = [cls for cls in (str.islower, str.isupper, str.isdigit) if any(cls(c) for c in alphabet)]
        while True:
            v = self.s(n, alphabet)
            if all(any(cls(c) for c in v) for cls in wanted):
                return v

    def pick(self, *options):
        return self.r.choice(options)

    def digits(self, n: int) -> str:
        return "".join(self.r.choice(string.digits) for _ in range(n))

    def prose(self) -> str:
        return self.pick(
            "The CLI crashes on start-up after the upgrade.",
            "Steps to reproduce are below; it happens every time.",
            "Same problem here on macOS 14 with Python 3.11.",
            "I tried clearing the cache but nothing changed.",
            "Any idea what is going on? Logs attached.",
            "This worked fine in the previous release.",
        )


def _wrap(g: _Gen, body: str) -> str:
    """The value inside a bit of issue prose, sometimes in a code block."""
    before, after = g.prose(), g.prose()
    if g.r.random() < 0.4:
        return f"{before}\n\n```\n{body}\n```\n\n{after}"
    return f"{before}\n{body}\n{after}"


def _jwt(g: _Gen) -> str:
    def enc(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    header = enc({"alg": g.pick("HS256", "RS256"), "typ": "JWT"})
    payload = enc({"sub": g.digits(8), "name": g.pick("alice", "bob", "ci-bot"), "iat": int(g.digits(10))})
    return f"{header}.{payload}.{g.s(43, URLSAFE)}"


def _pem(g: _Gen, label: str) -> tuple[str, tuple[str, ...]]:
    lines = [g.s(64, B64) for _ in range(g.r.randint(3, 6))] + [g.s(g.r.randint(8, 60), B64)]
    block = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"
    return block, tuple(lines)


def _secret_makers(g: _Gen) -> dict[str, Callable[[], tuple[str, tuple[str, ...]]]]:
    """kind -> a function returning (text, values that must go)."""

    def token_in_context(value: str, contexts: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        return _wrap(g, g.pick(*contexts).format(v=value)), (value,)

    generic_ctx = (
        "my token is {v}", "export TOKEN={v}", 'token = "{v}"', "Using key {v} now", "--token {v}",
        "curl -H 'Authorization: Bearer {v}' https://api.example.com/v1/me", "{v}",
        "const client = new Client('{v}');", "  api_key: {v}",
    )  # fmt: skip

    def tok(make: Callable[[], str], contexts: tuple[str, ...] = generic_ctx):
        return lambda: token_in_context(make(), contexts)

    def aws_pair():
        key_id = g.pick("AKIA", "ASIA") + g.s(16, string.ascii_uppercase + "234567")
        secret = g.mixed(40, B64)
        form = g.pick(
            "aws_access_key_id = {k}\naws_secret_access_key = {s}",
            "AWS_ACCESS_KEY_ID={k} AWS_SECRET_ACCESS_KEY={s} aws s3 ls",
            "key id {k}, secret {s}",
            "export AWS_ACCESS_KEY_ID={k}\nexport AWS_SECRET_ACCESS_KEY={s}",
            "{k}:{s}",
        )
        return _wrap(g, form.format(k=key_id, s=secret)), (key_id, secret)

    def azure_storage():
        key = g.mixed(86, B64) + "=="
        account = "acct" + g.s(6, string.ascii_lowercase)
        conn = f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};EndpointSuffix=core.windows.net"
        return _wrap(g, conn), (key,)

    def azure_client_secret():
        value = g.s(3, AN) + g.pick(*"0123456789") + "Q~" + g.s(34, AN + "_~.-")
        return token_in_context(value, ("AZURE_CLIENT_SECRET={v}", 'client secret: "{v}"', "secret {v}"))

    def gcp_service_account():
        block, lines = _pem(g, "PRIVATE KEY")
        escaped = block.replace("\n", "\\n")
        doc = json.dumps({"type": "service_account", "project_id": "demo-" + g.s(5, string.ascii_lowercase),
                          "private_key_id": g.s(40, HEX)})[:-1]  # fmt: skip
        return _wrap(g, doc + f', "private_key": "{escaped}\\n"}}'), lines

    def private_key(label: str):
        def make():
            block, lines = _pem(g, label)
            return _wrap(g, block), lines

        return make

    def jwt():
        value = _jwt(g)
        return token_in_context(value, ("Authorization: Bearer {v}", "id_token={v}", "the JWT {v} expired", "{v}"))

    def password_flag():
        pw = g.mixed(g.r.randint(8, 16), AN + "!#%^*_")
        form = g.pick(
            "mysql -uroot -p{p} -h db.internal", "mysqldump -u admin -p{p} shop > dump.sql",
            "mysql --user=app --password={p} app", "psql --password {p} -U postgres",
            "sshpass -p {p} ssh deploy@build", "redis-cli -h cache -a {p} ping",
            "docker login -u ci --password {p} registry.example.com", "mysql -u root -p'{p}'",
        )  # fmt: skip
        return _wrap(g, form.format(p=pw)), (pw,)

    def assignment():
        pw = g.mixed(g.r.randint(8, 16), AN + "!#%^*_")
        form = g.pick(
            "DB_PASSWORD={p}", "password: {p}", 'password = "{p}"', '"password": "{p}"', "PASSWORD={p}",
            "spring.datasource.password={p}", "Server=db;Database=shop;User Id=sa;Password={p};",
            "POSTGRES_PASSWORD: {p}", "ADMIN_PASS={p}", "my password is {p}", "pwd={p}",
        )  # fmt: skip
        return _wrap(g, form.format(p=pw)), (pw,)

    def password_prose():
        pw = g.mixed(g.r.randint(8, 14), AN + "!#%^*_")
        form = g.pick(
            "the password for root is {p}, please rotate it", "数据库密码是 {p}", "密码：{p}",
            "FYI the admin password was {p} on staging", "login with user admin and password: {p}",
        )  # fmt: skip
        return _wrap(g, form.format(p=pw)), (pw,)

    def basic_auth():
        creds = base64.b64encode(f"{g.pick('admin', 'ci', 'deploy')}:{g.mixed(12)}".encode()).decode()
        form = g.pick("Authorization: Basic {c}", "curl -H \"Authorization: Basic {c}\" https://ci.example.com",
                      "-H 'authorization: basic {c}'")  # fmt: skip
        return _wrap(g, form.format(c=creds)), (creds,)

    def bearer():
        value = g.mixed(g.r.randint(24, 48), AN + "-._~")
        form = g.pick("Authorization: Bearer {v}", "authorization: token {v}", "X-Api-Key: {v}",
                      "PRIVATE-TOKEN: {v}", "headers = {{'Authorization': 'Bearer {v}'}}")  # fmt: skip
        return _wrap(g, form.format(v=value)), (value,)

    def connection_string():
        user, pw = g.pick("admin", "app", "root", "svc_ro"), g.mixed(g.r.randint(8, 16))
        host = g.pick("db.example.com", "10.0.3.7", "cluster0.ab1cd.mongodb.net", "cache.internal")
        form = g.pick(
            "postgres://{u}:{p}@{h}:5432/app", "mongodb+srv://{u}:{p}@{h}/test?retryWrites=true",
            "mysql://{u}:{p}@{h}/shop", "amqp://{u}:{p}@{h}:5672/", "redis://{u}:{p}@{h}:6379/0",
            "DATABASE_URL=postgresql://{u}:{p}@{h}/prod", "git clone https://{u}:{p}@github.com/acme/app.git",
        )  # fmt: skip
        return _wrap(g, form.format(u=user, p=pw, h=host)), (pw,)

    def unseen(prefix_ctx: str):
        # A provider no rule knows: a random value and a credential word nearby.
        def make():
            value = g.mixed(g.r.randint(24, 48), AN + g.pick("", "_", "-"))
            return _wrap(g, prefix_ctx.format(v=value, p=g.s(4, string.ascii_lowercase))), (value,)

        return make

    return {
        "github_pat_classic": tok(lambda: "ghp_" + g.mixed(36)),
        "github_oauth": tok(lambda: g.pick("gho_", "ghu_", "ghs_", "ghr_") + g.mixed(36)),
        "github_fine_grained_pat": tok(lambda: "github_pat_" + g.mixed(22) + "_" + g.mixed(59)),
        "gitlab_pat": tok(lambda: "glpat-" + g.mixed(20, URLSAFE)),
        "gitee_token": tok(lambda: g.s(32, HEX), ("access_token={v}", "Gitee token: {v}", 'GITEE_TOKEN="{v}"',
                                                   "私人令牌 token {v}", "?access_token={v}&state=open")),  # fmt: skip
        "huggingface": tok(lambda: "hf_" + g.mixed(34, string.ascii_letters)),
        "openai": tok(lambda: g.pick("sk-proj-" + g.mixed(64, URLSAFE), "sk-" + g.mixed(20) + "T3BlbkFJ" + g.mixed(20))),
        "anthropic": tok(lambda: "sk-ant-api03-" + g.mixed(93, URLSAFE) + "AA"),
        "replicate": tok(lambda: "r8_" + g.mixed(37)),
        "cohere_like": tok(lambda: g.mixed(40), ("COHERE_API_KEY={v}", "co = cohere.Client('{v}')",
                                                 "my Cohere key: {v}", 'api_key="{v}"')),  # fmt: skip
        "groq_perplexity": tok(lambda: g.pick("gsk_" + g.mixed(52), "pplx-" + g.mixed(48))),
        "google_api_key": tok(lambda: "AIza" + g.mixed(35, URLSAFE)),
        "aws_key_pair": aws_pair,
        "azure_storage_key": azure_storage,
        "azure_client_secret": azure_client_secret,
        "gcp_service_account": gcp_service_account,
        "sendgrid": tok(lambda: "SG." + g.mixed(22, URLSAFE) + "." + g.mixed(43, URLSAFE)),
        "mailgun": tok(lambda: "key-" + g.s(32, HEX)),
        "twilio": tok(lambda: "SK" + g.s(32, HEX)),
        "slack_token": tok(lambda: g.pick("xoxb-", "xoxp-") + g.digits(12) + "-" + g.digits(13) + "-" + g.mixed(24)),
        "slack_webhook": tok(lambda: f"https://hooks.slack.com/services/T{g.s(10, string.ascii_uppercase + string.digits)}/B{g.s(10, string.ascii_uppercase + string.digits)}/{g.mixed(24)}", ("webhook: {v}", "curl -X POST {v}", "{v}")),  # fmt: skip
        "discord_webhook": tok(lambda: f"https://discord.com/api/webhooks/{g.digits(18)}/{g.mixed(68, URLSAFE)}", ("webhook url {v}", "{v}")),  # fmt: skip
        "telegram_bot": tok(lambda: g.digits(10) + ":AA" + g.mixed(33, URLSAFE), ("bot token {v}", "https://api.telegram.org/bot{v}/getMe", "TELEGRAM_TOKEN={v}")),  # fmt: skip
        "stripe": tok(lambda: g.pick("sk_live_", "rk_live_", "sk_test_") + g.mixed(g.r.choice((24, 34, 99)))),
        "npm": tok(lambda: "npm_" + g.mixed(36), ("//registry.npmjs.org/:_authToken={v}", "NPM_TOKEN={v}", "{v}")),
        "pypi": tok(lambda: "pypi-AgEIcHlwaS5vcmc" + g.mixed(70, URLSAFE), ("password = {v}", "TWINE_PASSWORD={v}", "{v}")),
        "dockerhub": tok(lambda: "dckr_pat_" + g.mixed(27, URLSAFE)),
        "jwt": jwt,
        "private_key_rsa": private_key("RSA PRIVATE KEY"),
        "private_key_openssh": private_key("OPENSSH PRIVATE KEY"),
        "private_key_pgp": private_key("PGP PRIVATE KEY BLOCK"),
        "private_key_ec": private_key("EC PRIVATE KEY"),
        "password_flag": password_flag,
        "password_assignment": assignment,
        "password_prose": password_prose,
        "discord_bot_token": tok(lambda: g.pick("M", "N") + g.mixed(25, URLSAFE) + "." + g.mixed(6, URLSAFE) + "." + g.mixed(38, URLSAFE)),
        "gcp_oauth_client_secret": tok(lambda: "GOCSPX-" + g.mixed(28, URLSAFE)),
        "basic_auth_header": basic_auth,
        "bearer_header": bearer,
        "connection_string": connection_string,
        "unseen_assignment": unseen("{p}_SECRET_KEY={v}"),
        "unseen_prose": unseen("here is the {p} api key: {v}"),
        "unseen_prefixed": unseen("token {p}_live_{v}"),
        "unseen_yaml": unseen("  client_secret: {v}"),
    }


def _phone(g: _Gen, region: str) -> phonenumbers.PhoneNumber:
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    national = str(example.national_number)
    while True:  # keep the example's leading digits (its area/mobile prefix), randomise the rest
        candidate = national[:3] + g.digits(len(national) - 3)
        number = phonenumbers.parse("+" + str(example.country_code) + candidate, None)
        if phonenumbers.is_valid_number(number):
            return number


def _card(g: _Gen) -> str:
    prefix, length = g.pick(("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16), ("62", 16))
    body = prefix + g.digits(length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def _cn_ric(g: _Gen) -> str:
    region = g.pick("110101", "310104", "440305", "510107", "330106")
    birth = f"{g.r.randint(1950, 2005)}{g.r.randint(1, 12):02d}{g.r.randint(1, 28):02d}"
    body = region + birth + g.digits(3)
    return body + ric.calc_check_digit(body + "0")  # it reads all but the last character


def _iban(g: _Gen) -> str:
    country, bban = g.pick(("DE", g.digits(18)), ("GB", "NWBK" + g.digits(14)), ("FR", g.digits(23)), ("NL", "ABNA" + g.digits(10)))
    check = std_iban.calc_check_digits(country + "00" + bban)  # type: ignore[attr-defined]
    return country + check + bban


def _pii_makers(g: _Gen) -> dict[str, Callable[[], tuple[str, tuple[str, ...]]]]:
    def email():
        addr = g.pick("jane.doe", "j.smith+gh", "wang.wei", "dev_ops", "m" + g.digits(4)) + "@" + g.pick(
            "example.com", "corp.example.org", "mail.example.cn", "uni-example.edu"
        )
        form = g.pick("Contact me at {v}", "From: Jane <{v}>", "cc {v}", "mailto:{v}", "email={v}")
        return _wrap(g, form.format(v=addr)), (addr,)

    def phone_intl():
        number = _phone(g, g.pick("US", "GB", "DE", "FR", "IN", "BR"))
        value = phonenumbers.format_number(number, g.pick(phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164))
        form = g.pick("call me on {v}", "Phone: {v}", "whatsapp {v}", "reach me at {v} after 5pm")
        return _wrap(g, form.format(v=value)), (value,)

    def phone_national():
        number = _phone(g, "US")
        value = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        return _wrap(g, g.pick("Phone: {v}", "call {v}", "my cell is {v}").format(v=value)), (value,)

    def phone_cn():
        mobile = g.pick("138", "139", "150", "186", "177", "199") + g.digits(8)
        value = g.pick(mobile, "+86 " + mobile[:3] + " " + mobile[3:7] + " " + mobile[7:], mobile[:3] + "-" + mobile[3:7] + "-" + mobile[7:], "+86" + mobile)
        form = g.pick("联系电话：{v}", "手机 {v}，谢谢", "有问题请联系我 {v}", "my number {v}", "{v}")
        return _wrap(g, form.format(v=value)), (value,)

    def ipv4():
        value = g.pick(f"203.0.113.{g.r.randint(1, 254)}", f"198.51.100.{g.r.randint(1, 254)}",
                       f"{g.r.randint(11, 223)}.{g.r.randint(0, 255)}.{g.r.randint(0, 255)}.{g.r.randint(1, 254)}",
                       f"192.168.{g.r.randint(0, 255)}.{g.r.randint(1, 254)}")  # fmt: skip
        form = g.pick("server at {v} refuses connections", "ssh root@{v}", "connect to {v}:5432 failed", "my IP is {v}")
        return _wrap(g, form.format(v=value)), (value,)

    def ipv6():
        groups = [f"{g.r.randint(1, 65535):x}" for _ in range(g.r.randint(3, 5))]
        value = "2001:db8:" + (":".join(groups + ["0"] * (6 - len(groups))) if g.r.random() < 0.5 else ":" + ":".join(groups))
        return _wrap(g, g.pick("listening on [{v}]:443", "client {v} timed out").format(v=value)), (value,)

    def card():
        digits = _card(g)
        value = g.pick(digits, " ".join(digits[i : i + 4] for i in range(0, len(digits), 4)), "-".join(digits[i : i + 4] for i in range(0, len(digits), 4)))
        form = g.pick("paid with card {v}", "Card: {v} exp 12/29", "cc number {v}", "{v}")
        return _wrap(g, form.format(v=value)), (value,)

    def cn_id():
        value = _cn_ric(g)
        form = g.pick("身份证号：{v}", "ID number {v}", "我的身份证 {v}", "{v}")
        return _wrap(g, form.format(v=value)), (value,)

    def ssn():
        value = f"{g.r.randint(1, 665):03d}-{g.r.randint(1, 99):02d}-{g.r.randint(1, 9999):04d}"
        return _wrap(g, g.pick("SSN: {v}", "social security number {v}", "ssn={v}").format(v=value)), (value,)

    def iban():
        value = _iban(g)
        if g.r.random() < 0.5:
            value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
        return _wrap(g, g.pick("IBAN: {v}", "please refund to {v}", "bank account {v}").format(v=value)), (value,)

    return {
        "email": email, "phone_international": phone_intl, "phone_national": phone_national, "phone_cn": phone_cn,
        "ipv4": ipv4, "ipv6": ipv6, "card": card, "national_id_cn": cn_id, "ssn": ssn, "iban": iban,
    }  # fmt: skip


def _negative_makers(g: _Gen) -> dict[str, Callable[[], str]]:
    def version_quad():
        v = f"{g.r.randint(1, 9)}.{g.r.randint(0, 9)}.{g.r.randint(0, 9)}.{g.r.randint(0, 9)}"
        return g.pick(f'[assembly: AssemblyVersion("{v}")]', f"AssemblyFileVersion {v}", f"Version={v}",
                      f"version {v} broke it", f"upgraded to v{v}", f"<FileVersion>{v}</FileVersion>")  # fmt: skip

    def uuid():
        h = g.s(32, HEX)
        return g.pick("request id {}", "run {} failed", "correlationId: {}").format(
            f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"
        )

    def base64_image():
        return f'<img src="data:image/png;base64,{g.s(g.r.randint(120, 400), B64)}=">'

    def long_number():
        while True:
            n = g.pick("4", "5", "3", "6") + g.digits(15)
            if not luhn.is_valid(n):
                return g.pick("order {} not found", "trace id {}", "the value {} overflowed").format(n)

    return {
        "neg_commit_sha": lambda: g.pick("fixed in {}", "commit {} broke CI", "bisected to {}").format(g.s(g.pick(7, 12, 40), HEX)),
        "neg_uuid": uuid,
        "neg_version": lambda: g.pick("pip install requests=={}", "Python {}", "node v{}", "release {}").format(
            f"{g.r.randint(0, 20)}.{g.r.randint(0, 30)}.{g.r.randint(0, 99)}"
        ),
        "neg_version_quad": version_quad,
        "neg_windows_build": lambda: f"Windows 10.0.{g.r.randint(17000, 22700)}.{g.r.randint(100, 3000)}",
        "neg_git_remote": lambda: g.pick("git@github.com:{}/{}.git", "git clone git@gitee.com:{}/{}.git").format(g.s(6, string.ascii_lowercase), g.s(5, string.ascii_lowercase)),  # fmt: skip
        "neg_pkg_at_version": lambda: g.pick("lodash@4.17.{}", "npm i @types/node@20.{}.0", "left-pad@1.{}.0").format(g.r.randint(1, 30)),
        "neg_retina_image": lambda: f"![logo](assets/logo@{g.pick('2x', '3x')}.png)",
        "neg_base64_image": base64_image,
        "neg_sha256": lambda: g.pick("sha256:{}", "SHA256 checksum {}", "digest: sha256:{}").format(g.s(64, HEX)),
        "neg_md5": lambda: f"md5 {g.s(32, HEX)}",
        "neg_integrity": lambda: f'"integrity": "sha512-{g.s(86, B64)}=="',
        "neg_timestamp": lambda: g.pick("at 2024-0{}-1{}T12:34:56Z", "on 2023-1{}-0{} 08:15:00", "epoch 17{}{}00000").format(g.r.randint(1, 9), g.r.randint(1, 9)),
        "neg_unix_millis": lambda: f"timestamp={17}{g.digits(11)}",
        "neg_issue_numbers": lambda: f"see #{g.r.randint(1000, 99999)} and PR #{g.r.randint(1000, 99999)}, port {g.r.randint(1024, 65535)}",
        "neg_localhost": lambda: g.pick("listening on 127.0.0.1:{}", "bind 0.0.0.0:{}", "http://localhost:{}/").format(g.r.randint(1024, 9999)),
        "neg_cpp_scope": lambda: g.pick("std::vector<int>::iterator", "boost::asio::ip::tcp", "a::b::c at 10:20:30"),
        "neg_mac_address": lambda: ":".join(g.s(2, HEX) for _ in range(6)),
        "neg_password_prose": lambda: g.pick("The password field is required.", "password: <your-password>", "PASSWORD=${DB_PASSWORD}",
                                             "api_key: os.environ['API_KEY']", "token: expired", "Set your API key in settings.",
                                             "password: required", "token = get_token()", "secret: !vault |", "PASSWORD=changeme",
                                             "The password is required.", "password was reset yesterday",
                                             "The password must be at least 8 characters long.", "密码错误，请重试"),  # fmt: skip
        "neg_path": lambda: g.pick("/usr/lib/python3.11/site-packages/numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
                                   "C:\\Program Files\\Microsoft Visual Studio\\2022\\Community\\VC\\Tools\\MSVC\\14.38.33130\\bin",
                                   "org.apache.commons.lang3.builder.ReflectionToStringBuilder", "AbstractSingletonProxyFactoryBeanTests"),  # fmt: skip
        "neg_k8s_names": lambda: f"pod web-{g.s(10, HEX[:10])}-{g.s(5, string.ascii_lowercase + string.digits)} restarted",
        "neg_long_number": long_number,
        "neg_hex_address": lambda: f"segfault at 0x{g.s(12, HEX)} ip 0x{g.s(12, HEX)} error 4",
        "neg_snowflake_id": lambda: f"message id {g.r.randint(10**17, 10**18 - 1)}",
        "neg_isbn_and_date": lambda: g.pick("ISBN 978-3-16-148410-0", "released 2023-11-30", "11/30/2026 10:20"),
        "neg_placeholder_token": lambda: g.pick("ghp_XXXXXXXXXXXXXXXXXXXX", "sk-...", "token: ********", "xoxb-your-token-here"),
    }


# --- Round 2: formats found leaking after issue 9 (password flags of other CLIs, password variables
# with weak values, config files, obfuscated e-mails, keys as URL user names). Drawn from a
# generator of their own (`seed + 1`), so the cases above stay the same draw as before.


def _weak_password(g: _Gen) -> str:
    """What people really use: a word and a few digits, a PIN, or a random string."""
    word = g.pick("hunter", "dragon", "summer", "monkey", "shadow", "letmein", "qwerty", "sunshine", "postgres", "root")
    return g.pick(word + g.digits(g.r.randint(1, 4)), g.digits(g.r.randint(6, 8)), g.mixed(g.r.randint(8, 14), AN + "!#%^*_"))


def _round2_secret_makers(g: _Gen) -> dict[str, Callable[[], tuple[str, tuple[str, ...]]]]:
    user = lambda: g.pick("bob", "ci", "deploy", "admin", "svc-build")  # noqa: E731

    def cli_password():
        pw = _weak_password(g)
        form = g.pick(
            "docker login -u {u} -p {p} registry.example.com", "podman login -u {u} -p {p} quay.io",
            "helm registry login ghcr.io -u {u} -p {p}", "oc login https://api.cluster.example.com:6443 -u {u} -p {p}",
            "nerdctl login -u {u} -p={p} harbor.internal", "mongosh -u {u} -p {p} --authenticationDatabase admin",
            "ldapsearch -x -D cn={u},dc=example,dc=org -w {p} -b dc=example,dc=org", "smbclient //fs01/share -U {u}%{p}",
            "rabbitmqctl add_user {u} {p}", "htpasswd -b /etc/nginx/.htpasswd {u} {p}", "htpasswd -nbB {u} {p}",
            "sshpass -p {p} ssh {u}@build-01", "redis-cli -h cache -a {p} ping", "mytool --db-password={p} migrate",
            "npm config set //npm.example.com/:_authToken {p}", "mysqladmin -u {u} -p{p} status",
            "sqlcmd -S db.example.com -U {u} -P {p} -Q 'SELECT 1'", "keytool -list -keystore app.jks -storepass {p}",
            "zip -P {p} backup.zip dump.sql", "7z x backup.7z -p{p}", "lftp -u {u},{p} ftp.example.com", "sshpass -p{p} scp a {u}@b:",
            "net use Z: \\\\fs01\\share /user:{u} {p}", "mc alias set minio http://minio:9000 {u} {p}",
            "echo '{p}' | sudo -S systemctl restart app", "echo {p} | docker login -u {u} --password-stdin",
            "db.example.com:5432:app:{u}:{p}", "java -Djavax.net.ssl.keyStorePassword={p} -jar app.jar",
            "influx -username {u} -password {p}", '{{"adminPassword": "{p}"}}',
        )  # fmt: skip
        return _wrap(g, form.format(u=user(), p=pw)), (pw,)

    def password_variable():
        pw = _weak_password(g)
        form = g.pick(
            "PGPASSWORD={p} psql -h db -U app", "export MYSQL_PWD={p}", "environment:\n  MYSQL_ROOT_PASSWORD: {p}",
            "    environment:\n      - POSTGRES_PASSWORD={p}", "REDIS_PASSWORD={p}", "SMTP_PASSWD={p}",
            "ENV RABBITMQ_DEFAULT_PASS={p}", "env:\n- name: POSTGRES_PASSWORD\n  value: {p}", "$env:PGPASSWORD = '{p}'",
            "set PGPASSWORD={p}", "PGPASSWORD='{p}' pg_dump app > app.sql", "MYSQL_PASSWORD={p}\nMYSQL_USER=app",
            "JWT_SECRET={p}", "auth:\n  username: admin\n  password: {p}", "- password: {p}", "PW={p}",
        )  # fmt: skip
        return _wrap(g, form.format(p=pw)), (pw,)

    def password_other_forms():
        pw, token = _weak_password(g), g.mixed(24)
        value, form = g.pick(
            (pw, "Passwort: {p}"), (pw, "mot de passe : {p}"), (pw, "contraseña: {p}"), (pw, "Пароль: {p}"),
            (pw, "パスワード：{p}"), (pw, "pw: {p}"), ("s." + token, "vault login {p}"), ("hvs." + token, "vault login {p}"),
            (pw, "the password {p} does not work any more"), (pw, "{p} is my password"), (pw, "client_secret={p}"),
        )  # fmt: skip
        return _wrap(g, form.format(p=value)), (value,)

    def url_key():
        key = g.pick(g.s(32, HEX), g.mixed(40))
        form = g.pick(
            "https://{k}@o{n}.ingest.sentry.io/{m}", "SENTRY_DSN=https://{k}@o{n}.ingest.us.sentry.io/{m}",
            "sentry_sdk.init(dsn=\"https://{k}@o{n}.ingest.sentry.io/{m}\")", "git remote set-url origin https://{k}@github.com/acme/app.git",
        )  # fmt: skip
        return _wrap(g, form.format(k=key, n=g.digits(6), m=g.digits(7))), (key,)

    def netrc():
        pw = _weak_password(g)
        form = g.pick("machine api.example.com login {u} password {p}", "machine github.com\n  login {u}\n  password {p}",
                      "# ~/.netrc\nmachine pypi.example.org\nlogin {u}\npassword {p}")  # fmt: skip
        return _wrap(g, form.format(u=user(), p=pw)), (pw,)

    def config_file():
        pw, token = _weak_password(g), g.mixed(g.r.randint(24, 40), URLSAFE)
        uuid = f"{g.s(8, HEX)}-{g.s(4, HEX)}-4{g.s(3, HEX)}-a{g.s(3, HEX)}-{g.s(12, HEX)}"
        value, form = g.pick(
            (pw, "<server>\n  <id>nexus</id>\n  <username>{u}</username>\n  <password>{v}</password>\n</server>"),
            (token, "users:\n- name: admin\n  user:\n    token: {v}"),
            (uuid, "//registry.npmjs.org/:_authToken={v}"),
            (pw, "[pypi]\nusername = {u}\npassword = {v}"),
            (pw, "Server=tcp:db.example.com,1433;Database=shop;User ID={u};Password={v};Encrypt=true;"),
            (pw, "jdbc:postgresql://db:5432/app?user={u}&password={v}&ssl=true"),
            (pw, "kubectl create secret generic db --from-literal=username={u} --from-literal=password={v}"),
            (token, "Cookie: sessionid={v}; csrftoken=abc"), (token, "Set-Cookie: session={v}; Path=/; HttpOnly"),
            (g.mixed(86, B64) + "==", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={v};EndpointSuffix=core.windows.net"),
        )  # fmt: skip
        return _wrap(g, form.format(u=user(), v=value)), (value,)

    def k8s_secret():
        pw, url_pw = _weak_password(g), g.mixed(12)
        b64 = lambda v: base64.b64encode(v.encode()).decode()  # noqa: E731
        db_url = b64(f"postgresql://app:{url_pw}@db:5432/app")
        if g.r.random() < 0.5:
            form = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  password: {b}\n  DATABASE_URL: {u}"
            values = (b64(pw), db_url)
        else:
            form = "kind: Secret\napiVersion: v1\nmetadata:\n  name: app\nstringData:\n  admin-password: {p}\n  database-url: {u}"
            values = (pw, db_url)
        return _wrap(g, form.format(b=b64(pw), p=pw, u=db_url)), values

    return {
        "cli_password": cli_password, "password_variable": password_variable, "url_key_credentials": url_key,
        "netrc": netrc, "config_file_secret": config_file, "k8s_secret_manifest": k8s_secret,
        "password_other_forms": password_other_forms,
    }  # fmt: skip


def _round2_pii_makers(g: _Gen) -> dict[str, Callable[[], tuple[str, tuple[str, ...]]]]:
    def obfuscated_email():
        first, last = g.pick("john", "jane", "wei", "maria", "dev"), g.pick("doe", "smith", "zhang", "ops")
        domain, tld = g.pick("example", "corp-example", "mail.example"), g.pick("com", "org", "net", "io", "cn", "de")
        d_dot = domain.replace(".", g.pick(" dot ", " [dot] ", "."))
        value = g.pick(
            f"{first} [at] {d_dot} [dot] {tld}", f"{first}.{last}(at){domain}.{tld}", f"{first} at {domain.replace('.', ' dot ')} dot {tld}",
            f"{first}\uff20{domain}.{tld}", f"{first}{{at}}{domain}{{dot}}{tld}", f"{first} dot {last} at {domain.replace('.', ' dot ')} dot {tld}",
            f"{first.upper()} AT {domain.replace('.', ' DOT ').upper()} DOT {tld.upper()}", f"{first}_{last} (at) {d_dot} (dot) {tld}",
        )  # fmt: skip
        form = g.pick("contact: {v}", "Write to {v} if it persists.", "maintainer {v}", "({v})", "email me {v}")
        return _wrap(g, form.format(v=value)), (value,)

    return {"obfuscated_email": obfuscated_email}


def _round2_negative_makers(g: _Gen) -> dict[str, Callable[[], str]]:
    port = lambda: str(g.r.randint(1024, 65535))  # noqa: E731
    return {
        "neg_cli_flags": lambda: g.pick(
            f"docker run -p {port()}:80 nginx", f"docker run -p {port()} web", f"podman run -p 127.0.0.1:{port()}:{port()}/tcp app",
            "mkdir -p build/out", "git log -p -- src/", f"ssh -p {port()} deploy@host", "tar -p -xzf backup.tar.gz",
            "docker login -u ci --password-stdin registry.example.com", "docker login -u ci -p $CI_REGISTRY_PASSWORD $CI_REGISTRY",
            "mysql -u root -p", "htpasswd -c /etc/nginx/.htpasswd bob", f"ps -p {port()} -o rss", "python -p foo.py",
            "ldapsearch -x -W -b dc=example,dc=org", "rabbitmqctl list_users", "npm config get registry",
            "zip -r site.zip public/", "7z a -p archive.7z files", "sqlcmd -S db -E -Q 'SELECT 1'", "gcc -pthread -o app main.c",
            "python -m pytest -p no:cacheprovider", "echo $DB_PASS | docker login --password-stdin", "at 10:20:30:40:50 UTC",
            "net use Z: \\\\fs01\\share /user:bob /persistent:yes", "aws configure set region us-east-1", "keytool -storepass:env KS_PASS",
        ),  # fmt: skip
        "neg_password_variable_placeholder": lambda: g.pick(
            "PGPASSWORD=${PGPASSWORD} psql -h db", "DB_PASSWORD=<password>", "DB_PASSWORD=***", "DB_PASSWORD=", "MYSQL_PWD=xxx",
            "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}", "POSTGRES_PASSWORD=changeme", "PASSWORD_FILE=/run/secrets/db",
            f"PWD=/home/{g.pick('bob', 'runner')}/src", "env:\n- name: DB_PASSWORD\n  valueFrom:\n    secretKeyRef:\n      name: db",
            "password_min_length: 12", "MYSQL_ROOT_PASSWORD_FILE=/run/secrets/mysql_root", "REDIS_PASSWORD=%REDIS_PASSWORD%",
            "set PGPASSWORD=", "- name: LOG_LEVEL\n  value: debug", "<password>${env.NEXUS_PASSWORD}</password>",
            "Password: incorrect", "Passwort: falsch", "Mot de passe : oublié ?", "pw = getpass()", "password: str",
            "vault login -method=userpass username=$USER", "PASSWORD = settings.PASSWORD", "if new_password == old_password:",
            "SECRET_KEY=${SECRET_KEY}", "GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}", "the password field does not work",
            "This is my password manager's fault.", "changeme is the default password", "client_secret: str",
        ),  # fmt: skip
        "neg_at_prose": lambda: g.pick(
            "Have a look at example dot com for the docs.", "I looked at the example. Dot com era code.", "np.dot(a, b) at index 0 fails",
            "Point at the dot product first.", "meet at 5 dot 30 tomorrow", "I am good at python dot net interop",
            "stared at foo.bar.com for an hour", "at least one dot com bubble", "x = a.at(b).dot(c)", "It works at example.com but not here.",
        ),  # fmt: skip
        "neg_url_user": lambda: g.pick(
            "ssh://git@github.com/acme/app.git", f"https://sentry.io/organizations/acme/issues/{g.digits(7)}/",
            f"docker pull ghcr.io/acme/app@sha256:{g.s(64, HEX)}", "https://readonly-user@bitbucket.org/acme/app.git",
            "kind: ConfigMap\ndata:\n  LOG_LEVEL: debug\n  FEATURE_FLAGS: search,export",
        ),  # fmt: skip
    }


def _draw(g: "_Gen", makers, per_secret: int, per_pii: int, per_negative: int) -> list[Case]:
    """Cases from one round's makers (secret, PII, negative), each family drawn in that order from g."""
    secret_makers, pii_makers, negative_makers = makers
    out: list[Case] = []
    for category, family, per in (("secret", secret_makers, per_secret), ("pii", pii_makers, per_pii)):
        for kind, make in family(g).items():
            for _ in range(per):
                text, values = make()
                out.append(Case(kind, category, text, values))
    for kind, make in negative_makers(g).items():
        for _ in range(per_negative):
            out.append(Case(kind, "negative", _wrap(g, make())))
    return out


def cases(seed: int = SEED, per_secret: int = 6, per_pii: int = 12, per_negative: int = 6) -> list[Case]:
    first = _draw(_Gen(seed), (_secret_makers, _pii_makers, _negative_makers), per_secret, per_pii, per_negative)
    # Round 2 draws from its own generator, so adding it left round 1's cases unchanged; its
    # negatives come in many forms each: draw more of them.
    second = _draw(_Gen(seed + 1), (_round2_secret_makers, _round2_pii_makers, _round2_negative_makers),
                   per_secret, per_pii, per_negative * 2)
    return first + second


def outcome(case: Case, redacted: str) -> bool:
    """Did redaction do the right thing: every value gone (positives), text intact (negatives)?"""
    if case.group == "negative":
        return redacted == case.text
    return not any(v in redacted for v in case.values)
