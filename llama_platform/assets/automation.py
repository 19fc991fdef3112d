"""Declarative automation: downstream assets follow their upstreams once these are updated.

Blocking asset checks (reconciliation, no secret survives, schema, split leakage, eval sanity)
stop a bad dataset or model from flowing further: eager never runs an asset whose upstream
failed a blocking check.
"""

from dagster import AutomationCondition

# Re-run when any upstream is updated (and none is missing or in progress).
follow_upstream = AutomationCondition.eager()

# For the consumer of raw_issues: a repo's windows before its history or a new month not yet
# refreshed are simply missing, which must not hold the dataset back.
follow_raw = AutomationCondition.eager().without(~AutomationCondition.any_deps_missing())
