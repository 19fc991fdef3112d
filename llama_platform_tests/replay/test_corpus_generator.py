"""The shipped corpus: reproducible from the generator, big enough, in wire format, with its traps."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from datetime import datetime, timedelta

import pytest

from llama_platform.replay.corpus import corpus_files
from llama_platform.replay.generator import FIXED_NOW, LABEL_TO_KIND, MANIFEST_NAME, write_corpus

from llama_platform_tests.support.replay_fixtures import comments_by_issue


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_generator_reproduces_shipped_bytes(corpus_dir, tmp_path):
    written = write_corpus(tmp_path)
    shipped = sorted(p.name for p in corpus_files(corpus_dir)) + [MANIFEST_NAME]
    assert sorted(p.name for p in written) == shipped
    for name in shipped:
        new, old = (tmp_path / name).read_bytes(), (corpus_dir / name).read_bytes()
        if name.endswith(".gz"):
            # Content first, for a clear message; then the exact bytes (gzip mtime 0, fixed level).
            assert gzip.decompress(new) == gzip.decompress(old), f"{name}: regenerate with corpus_generator --out"
        assert new == old, f"{name} differs from a fresh generation"


def test_scale_changes_size_not_shape(tmp_path):
    write_corpus(tmp_path, scale=0.05)
    sizes = {p.name: p.stat().st_size for p in corpus_files(tmp_path)}
    assert len(sizes) == 4
    with pytest.raises(ValueError):
        write_corpus(tmp_path / "x", scale=0)


def test_counts_and_repos(corpus, manifest, corpus_dir):
    sources = Counter(k.split(":")[0] for k in corpus)
    assert sources["github"] >= 2 and sources["gitee"] >= 1
    issues = sum(1 for d in corpus.values() for i in d["issues"] if "pull_request" not in i)
    assert 1500 <= issues <= 2500
    assert sum(m["issues"] for m in manifest["repos"].values()) == issues
    assert sum(p.stat().st_size for p in corpus_dir.iterdir()) < 5_000_000  # commit-sized


def test_github_wire_format(corpus):
    for key, data in corpus.items():
        if data["source"] != "github":
            continue
        prs = [i for i in data["issues"] if "pull_request" in i]
        assert prs and len(prs) < len(data["issues"]) / 4, key
        numbers = [i["number"] for i in data["issues"]]
        assert all(isinstance(n, int) for n in numbers) and len(set(numbers)) == len(numbers)
        for i in data["issues"]:
            assert {"login", "type"} <= i["user"].keys()
            assert i["author_association"] in {"OWNER", "MEMBER", "CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "NONE"}
            assert all({"name", "color"} <= lab.keys() for lab in i["labels"])
            assert i["html_url"].startswith(f"https://github.com/{data['repo']}/")
            if "created_at" in i:
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", i["created_at"])
        for c in data["comments"]:
            assert re.search(r"/issues/\d+$", c["issue_url"])


def test_gitee_wire_format(corpus):
    gitee = [d for d in corpus.values() if d["source"] == "gitee"]
    assert gitee
    states = Counter()
    for data in gitee:
        for i in data["issues"]:
            assert isinstance(i["number"], str) and re.fullmatch(r"I[0-9A-Z]{5}", i["number"])
            assert {"login", "name"} <= i["user"].keys()
            assert i["issue_type"] in {"缺陷", "需求", "任务"}
            assert i["updated_at"].endswith("+08:00")
            if i["state"] in ("closed", "rejected"):
                assert i["finished_at"].endswith("+08:00")
            states[i["state"]] += 1
        for c in data["comments"]:
            assert {"number", "title"} <= c["target"]["issue"].keys()
    assert {"open", "progressing", "closed", "rejected"} <= set(states)
    zh = corpus["gitee:lingyun-dev/lingyun"]["issues"]
    assert sum(bool(re.search(r"[\u4e00-\u9fff]", i["title"] or "")) for i in zh) > 0.9 * len(zh)


def test_every_issue_has_one_kind_label_and_comment_counts_match(corpus):
    for key, data in corpus.items():
        joined = comments_by_issue(data)
        for i in data["issues"]:
            kinds = {LABEL_TO_KIND[lab["name"]] for lab in i["labels"] if lab["name"] in LABEL_TO_KIND}
            if "pull_request" not in i:
                assert len(kinds) == 1, (key, i["number"], i["labels"])
            assert i["comments"] == len(joined.get(str(i["number"]), [])), (key, i["number"])
            assert len(joined.get(str(i["number"]), [])) <= 8
        assert set(joined) <= {str(i["number"]) for i in data["issues"]}, f"{key}: comment on unknown issue"


def test_times_span_two_years_before_fixed_now(corpus):
    created = [_ts(i["created_at"]) for d in corpus.values() for i in d["issues"] if "created_at" in i]
    updated = [_ts(i["updated_at"]) for d in corpus.values() for i in d["issues"]]
    assert max(created + updated) < FIXED_NOW
    assert min(created) >= FIXED_NOW - timedelta(days=731)
    assert max(created) - min(created) > timedelta(days=600)
    for d in corpus.values():
        for i in d["issues"]:
            if "created_at" in i:
                assert _ts(i["updated_at"]) >= _ts(i["created_at"])


def test_bots_and_bot_invocations(corpus):
    authors = Counter()
    bodies = []
    for d in corpus.values():
        for c in d["comments"]:
            authors[(c["user"]["login"], c["user"].get("type"))] += 1
            bodies.append(c["body"])
    for login in ("dependabot[bot]", "github-actions[bot]", "codecov-bot"):
        assert authors[(login, "Bot")] > 0, login
    assert authors[("ci-robot", "User")] > 0  # Gitee doesn't flag bots
    assert "@dependabot rebase" in bodies and "/retest" in bodies
    assert sum("wrote:" in b and "\n> " in b for b in bodies) > 5  # email-reply footers


def test_secrets_and_emails_are_planted(corpus, manifest):
    text = "\n".join(
        (x.get("body") if isinstance(x.get("body"), str) else "") for d in corpus.values() for x in d["issues"] + d["comments"]
    )
    assert len(re.findall(r"ghp_[A-Za-z0-9]{36}", text)) >= 10
    assert len(re.findall(r"AKIA[A-Z2-7]{16}", text)) >= 10
    assert text.count("-----BEGIN RSA PRIVATE KEY-----") >= 10
    assert len(re.findall(r"https://[\w.-]+:[A-Za-z0-9]+@", text)) >= 10
    assert len(re.findall(r"[\w.+-]+@(?:[\w-]+\.)*example\.(?:com|org|net|cn)", text)) >= 50
    kinds = Counter(p["kind"] for m in manifest["repos"].values() for p in m["planted_pii"])
    assert set(kinds) == {"github_token", "aws_key", "private_key", "url_credentials", "email"}


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+|[\u4e00-\u9fff]", text.lower())
    return {tuple(words[i : i + 3]) for i in range(max(1, len(words) - 2))}


def test_near_duplicates_are_near(corpus, manifest):
    index = {(k, str(i["number"])): i for k, d in corpus.items() for i in d["issues"]}
    dups = [(k, e) for k, m in manifest["repos"].items() for e in m["near_duplicates"]]
    cross_repo = [e for k, e in dups if not e["of"].startswith(k + "#")]
    assert len(dups) >= 40 and len(cross_repo) >= 150  # the mirror plus GitHub cross-posts
    similarity = []
    for key, entry in dups:
        src_key, num = entry["of"].split("#")
        a, b = index[(key, entry["number"])], index[(src_key, num)]
        if all(isinstance(x, str) for x in (a["title"], a["body"], b["title"], b["body"])):
            x, y = _shingles(a["title"] + " " + a["body"]), _shingles(b["title"] + " " + b["body"])
            similarity.append(len(x & y) / len(x | y))
    similarity.sort()
    assert similarity[0] >= 0.25 and similarity[len(similarity) // 2] > 0.8, similarity[:5]


def test_malformed_records_are_about_one_percent(corpus, manifest):
    malformed = [(k, e) for k, m in manifest["repos"].items() for e in m["malformed"]]
    total = sum(len(d["issues"]) for d in corpus.values())
    assert 0.005 <= len(malformed) / total <= 0.02
    assert {e["kind"] for _, e in malformed} == {"null_title", "nonstring_body", "missing_created_at", "invalid_state", "huge_body"}
    index = {(k, str(i["number"])): i for k, d in corpus.items() for i in d["issues"]}
    for key, e in malformed:
        issue = index[(key, e["number"])]
        if e["kind"] == "huge_body":
            assert 60_000 < len(issue["body"]) < 200_000


def test_text_carries_the_label_signal(corpus):
    """A bag-of-words classifier learns the kind from title+body: the labels are learnable."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    rows = []
    for d in corpus.values():
        for i in d["issues"]:
            kinds = [LABEL_TO_KIND[lab["name"]] for lab in i["labels"] if lab["name"] in LABEL_TO_KIND]
            if "pull_request" in i or not isinstance(i["title"], str) or not kinds:
                continue
            body = i["body"] if isinstance(i["body"], str) else ""
            rows.append((i["title"] + "\n" + body[:3000], kinds[0]))
    train, test = rows[::2], rows[1::2]
    # Words for English, single characters for Chinese (no spaces between words).
    vec = TfidfVectorizer(token_pattern=r"[A-Za-z_]{2,}|[\u4e00-\u9fff]", min_df=2, sublinear_tf=True)
    clf = LogisticRegression(max_iter=500).fit(vec.fit_transform([t for t, _ in train]), [y for _, y in train])
    acc = (clf.predict(vec.transform([t for t, _ in test])) == [y for _, y in test]).mean()
    majority = Counter(y for _, y in test).most_common(1)[0][1] / len(test)
    print(f"kind accuracy {acc:.3f} (majority {majority:.3f})")
    assert acc > 0.8 and acc > majority + 0.3, (acc, majority)
    # Label noise (~6%) caps it: perfect accuracy would mean the templates leak the label verbatim.
    assert acc < 0.99, acc


def test_comments_factor_scales_comments_only():
    from llama_platform.replay.generator import generate

    base, base_manifest = generate(scale=0.05)
    more, more_manifest = generate(scale=0.05, comments_factor=3.0)
    assert "comments_factor" not in base_manifest and more_manifest["comments_factor"] == 3.0
    for name in base:
        assert len(more[name]["issues"]) == len(base[name]["issues"])
    n_base = sum(len(d["comments"]) for d in base.values())
    n_more = sum(len(d["comments"]) for d in more.values())
    assert 1.5 * n_base < n_more < 3.5 * n_base  # fewer than 3x: comments stop at the corpus "now"
    with pytest.raises(ValueError):
        generate(scale=0.05, comments_factor=-1)
