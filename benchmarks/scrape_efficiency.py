"""How many API requests a full backfill and a no-change poll cost, against the floor and a naive scraper.

    .venv/bin/python benchmarks/scrape_efficiency.py [--scale 2.7] [--comments-factor 2.5]

Generates a replay corpus (>= 5,000 issues and >= 20,000 comments over 4 repos with the defaults)
into a temp folder, serves it with the replay forge, and prints per repo and in total:
  platform  the platform's connectors (`GitHubForge` / `GiteeForge`, `fetch_repo`)
  naive     a scraper as commonly written: plain PyGithub `get_repo` + `repo.get_issues(state="all")` +
            `issue.get_comments()` per issue at the default page size (30) (see `naive_github`); for Gitee the same with
            httpx (default page size 20, stop on an empty page, comments per issue)
  floor     ceil(issues/100) + ceil(comments/100) (issues including PRs, as GitHub lists them)
and `floor_ratio` = platform / floor (goal <= 1.05). Then a poll of every repo after nothing
changed: requests per repo (goal <= 1) and how many GitHub answered 304. Wall times for platform and
naive. Both clients run with no politeness delay (PyGithub's default 0.25 s between requests would
dominate the naive run's time).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import httpx
from github import Github
from github.Issue import Issue
from github.IssueComment import IssueComment
from github.PaginatedList import PaginatedList
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llama_platform.replay.corpus import load_corpus  # noqa: E402
from llama_platform.replay.generator import write_corpus  # noqa: E402
from llama_platform.sources.gitee import GiteeForge  # noqa: E402
from llama_platform.sources.github import GitHubForge  # noqa: E402
from llama_platform.replay.forge import ReplayForgeServer  # noqa: E402


def platform_fetch(srv: ReplayForgeServer, source: str, repo: str) -> tuple[int, int]:
    forge = GitHubForge(srv.github_url, None) if source == "github" else GiteeForge(srv.gitee_url, None)
    issues = comments = 0
    for issue, cs in forge.fetch_issues(repo):
        issues += 1
        comments += len(cs)
    return issues, comments


def naive_github(srv: ReplayForgeServer, repo: str) -> tuple[int, int]:
    """`for issue in gh.get_repo(r).get_issues(state="all"): issue.get_comments()`, request for request.

    Those PyGithub methods follow the API URLs inside the JSON, which in the replayed corpus point at
    api.github.com; so the same PaginatedLists are built here on the replay forge's base URL.
    """
    gh = Github(base_url=srv.github_url, seconds_between_requests=0)
    gh.get_repo(repo)  # Github(lazy=False), the default: one request for the repo object
    issues = comments = 0
    for issue in PaginatedList(Issue, gh.requester, f"/repos/{repo}/issues", {"state": "all"}):
        issues += 1
        url = f"/repos/{repo}/issues/{issue.number}/comments"
        comments += sum(1 for _ in PaginatedList(IssueComment, gh.requester, url, None))
    return issues, comments


def naive_gitee(srv: ReplayForgeServer, repo: str) -> tuple[int, int]:
    issues = comments = 0
    with httpx.Client(base_url=srv.gitee_url, timeout=30) as client:
        page = 1
        while True:
            batch = client.get(f"/repos/{repo}/issues", params={"state": "all", "page": page}).json()
            if not batch:
                break
            for issue in batch:
                issues += 1
                comments += len(client.get(f"/repos/{repo}/issues/{issue['number']}/comments").json())
            page += 1
    return issues, comments


def measure(srv: ReplayForgeServer, repos: list[tuple[str, str]], fetch, label: str) -> tuple[dict, float]:
    out = {}
    start = time.perf_counter()
    for source, repo in tqdm(repos, desc=label, unit="repo", file=sys.stderr):
        srv.reset()
        got = fetch(srv, source, repo)
        out[(source, repo)] = (srv.stats()["total"], got)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=2.7, help="corpus_generator scale (issues)")
    parser.add_argument("--comments-factor", type=float, default=2.5, help="corpus_generator comments per issue factor")
    parser.add_argument("--skip-naive", action="store_true", help="skip the (slow) naive baseline")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="scrape-bench-") as tmp:
        corpus_dir = Path(tmp) / "corpus"
        t0 = time.perf_counter()
        write_corpus(corpus_dir, scale=args.scale, comments_factor=args.comments_factor)
        corpus = {(d["source"], d["repo"]): d for d in load_corpus(corpus_dir)}
        n_issues = sum(len(d["issues"]) for d in corpus.values())
        n_comments = sum(len(d["comments"]) for d in corpus.values())
        print(f"corpus: {len(corpus)} repos, {n_issues:,} issues (PRs included), {n_comments:,} comments "
              f"(generated in {time.perf_counter() - t0:.1f} s)")
        repos = sorted(corpus)
        floor = {k: math.ceil(len(d["issues"]) / 100) + math.ceil(len(d["comments"]) / 100) for k, d in corpus.items()}

        # The naive baseline spends thousands of requests: give the replayed rate limit room for it.
        with ReplayForgeServer(corpus_dir, log_dir=Path(tmp) / "logs", rate_limit=10_000_000) as srv:
            platform, platform_s = measure(srv, repos, lambda s, src, r: platform_fetch(s, src, r), "platform")
            for k, (_, got) in platform.items():  # the platform's count is only worth printing if complete
                want = (len(corpus[k]["issues"]), len(corpus[k]["comments"]))
                if got != want:
                    raise SystemExit(f"platform fetch of {k} incomplete: got {got}, want {want}")
            naive, naive_s = ({}, float("nan"))
            if not args.skip_naive:
                naive, naive_s = measure(
                    srv, repos, lambda s, src, r: naive_github(s, r) if src == "github" else naive_gitee(s, r), "naive")

            # No-change poll: the etag/cursor from a first poll, then the poll a sensor would make.
            polls = {}
            for source, repo in repos:
                forge = GitHubForge(srv.github_url, None) if source == "github" else GiteeForge(srv.gitee_url, None)
                first = forge.poll(repo)
                srv.reset()
                again = forge.poll(repo, first.etag)
                stats = srv.stats()
                polls[(source, repo)] = (stats["total"], sum(stats["not_modified"].values()), again.changed)

    print()
    print(f"{'repo':40} {'issues':>7} {'comments':>9} {'floor':>6} {'platform':>9} {'naive':>7} {'poll':>5} {'304':>4}")
    for k in repos:
        d = corpus[k]
        naive_n = naive[k][0] if k in naive else float("nan")
        print(f"{k[0] + ':' + k[1]:40} {len(d['issues']):>7,} {len(d['comments']):>9,} {floor[k]:>6} "
              f"{platform[k][0]:>9} {naive_n:>7} {polls[k][0]:>5} {polls[k][1]:>4}")
    total_floor = sum(floor.values())
    total_platform = sum(v[0] for v in platform.values())
    total_naive = sum(v[0] for v in naive.values()) if naive else float("nan")
    github_repos = [k for k in repos if k[0] == "github"]
    print()
    print(f"floor_requests:      {total_floor}")
    print(f"platform_requests:   {total_platform}")
    print(f"naive_requests:      {total_naive}")
    print(f"floor_ratio:         {total_platform / total_floor:.3f}   (platform / floor; goal <= 1.05)")
    print(f"naive_vs_platform:   {total_naive / total_platform:.1f}x requests")
    print(f"platform_wall_s:     {platform_s:.1f}")
    print(f"naive_wall_s:        {naive_s:.1f}   ({naive_s / platform_s:.1f}x the platform's)")
    print(f"poll_requests_per_repo_max: {max(v[0] for v in polls.values())}   (goal <= 1)")
    print(f"poll_304_github:     {sum(polls[k][1] for k in github_repos)} of {len(github_repos)} GitHub repos")
    print(f"poll_changed:        {sum(v[2] for v in polls.values())} (nothing changed: goal 0)")
    ok = (total_platform / total_floor <= 1.05 and max(v[0] for v in polls.values()) <= 1
          and sum(polls[k][1] for k in github_repos) == len(github_repos) and not any(v[2] for v in polls.values()))
    print(f"goals_met:           {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
