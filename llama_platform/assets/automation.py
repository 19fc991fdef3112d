"""Declarative automation: downstream assets follow their upstreams when the upstreams' *data*
changes (Dagster data versions), not merely when they are re-materialised.

A re-run that rewrites identical raw windows keeps raw_issues' data version, so nothing downstream
is requested; and what a `llama-platform run` just rebuilt is already handled (its own update
resets the condition), so the automation sensor never rebuilds it a second time.

Blocking asset checks (reconciliation, no secret survives, schema, split leakage, eval sanity)
stop a bad dataset or model from flowing further.
"""

from dagster import AutomationCondition as AC


def _follow(allow_missing_deps: bool) -> AC:
    deps_changed = AC.any_deps_match(AC.data_version_changed() | AC.will_be_requested()).with_label(
        "any_deps_data_changed"
    )
    changed = (AC.newly_missing() | AC.code_version_changed() | deps_changed).since_last_handled()
    condition = changed & ~AC.any_deps_in_progress() & ~AC.in_progress() & AC.all_deps_blocking_checks_passed()
    if not allow_missing_deps:
        condition = condition & ~AC.any_deps_missing()
    return condition.with_label("follow_upstream_data")


# Re-run when an upstream's data changed (and none is missing or in progress), or the code did.
follow_upstream = _follow(allow_missing_deps=False)

# For the consumer of raw_issues: a repo's windows before its history or a new month not yet
# refreshed are simply missing, which must not hold the dataset back.
follow_raw = _follow(allow_missing_deps=True)
