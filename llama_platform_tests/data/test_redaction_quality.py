"""Redaction quality on the labelled set (redaction_cases.py): the goals of issue 9 as a regression test."""

from __future__ import annotations

from collections import defaultdict

import pytest

from llama_platform.data import pii
from llama_platform.data.redaction import find_secrets, redact
from llama_platform.data.verify import verify
from llama_platform_tests.data.redaction_cases import cases, outcome


@pytest.fixture(scope="module")
def scored():
    by_group, by_kind = defaultdict(list), defaultdict(list)
    for case in cases():
        ok = outcome(case, redact(case.text)[0])
        by_group[case.group].append(ok)
        by_kind[case.kind].append(ok)
    return by_group, by_kind


def test_the_set_is_large_and_covers_every_group():
    labelled = cases()
    assert len(labelled) >= 300
    kinds = defaultdict(set)
    for c in labelled:
        kinds[c.group].add(c.kind)
    assert len(kinds["secret"]) >= 30 and len(kinds["pii"]) >= 8 and len(kinds["negative"]) >= 20
    # Generated from a seed: the same set every run, a different one for another seed.
    assert [c.text for c in cases()] == [c.text for c in labelled]
    assert [c.text for c in cases(seed=1)] != [c.text for c in labelled]


def test_goals_on_the_labelled_set(scored):
    by_group, by_kind = scored

    def rate(xs):
        return sum(xs) / len(xs)

    weakest = sorted((rate(v), k) for k, v in by_kind.items())[:5]
    assert rate(by_group["secret"]) >= 0.99, weakest
    assert rate(by_group["pii"]) >= 0.95, weakest
    assert rate(by_group["negative"]) >= 0.97, weakest


def test_a_second_seed_meets_the_goals_too():
    # Not tuned to one draw of random values.
    labelled = cases(seed=7, per_secret=2, per_pii=4, per_negative=2)
    ok = defaultdict(list)
    for case in labelled:
        ok[case.group].append(outcome(case, redact(case.text)[0]))
    assert sum(ok["secret"]) / len(ok["secret"]) >= 0.99
    assert sum(ok["pii"]) / len(ok["pii"]) >= 0.95
    assert sum(ok["negative"]) / len(ok["negative"]) >= 0.97


def test_redacted_positives_leave_nothing_for_either_scanner():
    for case in cases(per_secret=1, per_pii=2, per_negative=0):
        clean, counts = redact(case.text)
        assert counts and find_secrets(clean) == [], case.kind
        assert verify(clean) == [], (case.kind, verify(clean))


@pytest.mark.parametrize(
    "text, kind",
    [
        ("联系电话：13812345678，谢谢", pii.PHONE),
        ("手机 +86 138 1234 5678", pii.PHONE),
        ("call me on +44 20 7946 0958", pii.PHONE),
        ("card 4111 1111 1111 1111 exp 12/29", pii.CARD_NUMBER),
        ("身份证号：11010119900307447" + "7", pii.NATIONAL_ID),
        ("IBAN DE89 3704 0044 0532 0130 00", pii.IBAN),
        ("SSN 123-45-6789", pii.NATIONAL_ID),
        ("server 203.0.113.9 is down", pii.IP_ADDRESS),
        ("mail 张伟zhang.wei@example.cn please", pii.EMAIL),
    ],
)
def test_personal_data_is_found_and_typed(text, kind):
    clean, counts = redact(text)
    assert counts.get(kind) == 1, (counts, clean)
    assert f"<{kind}>" in clean


@pytest.mark.parametrize(
    "text",
    [
        '[assembly: AssemblyVersion("1.2.3.4")]',
        "AssemblyFileVersion 2.0.1.0 and version 4.0.30319.42000",
        "git clone git@github.com:acme/server.git",
        "npm i lodash@4.17.21 @types/node@20.1.0",
        "![logo](img/logo@2x.png)",
        "card 4111 1111 1111 1112 fails Luhn",  # one digit off
        "id 110101199003074478 has a wrong check digit",
        "IBAN DE89 3704 0044 0532 0130 01",  # wrong mod-97
        "commit 3f2a9c1b7d4e5f60718293a4b5c6d7e8f9012345 and request 123e4567-e89b-42d3-a456-426614174000",
        "at 2024-05-17T12:34:56Z, epoch 1715949296, see #12345",
        '<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==">',
    ],
)
def test_look_alikes_are_kept(text):
    assert redact(text) == (text, {})
