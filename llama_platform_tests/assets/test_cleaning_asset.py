"""The clean asset streams its input: chunked, in worker processes, and still equal to clean_issues."""

from __future__ import annotations

from dagster import materialize

from llama_platform.assets.cleaning import clean
from llama_platform.data.cleaning import clean_issues
from llama_platform.resources.cleaning import CleaningResource
from llama_platform_tests.assets.factories import raw_frame, stub


def test_streamed_in_small_chunks_by_two_workers_equals_clean_issues(instance, resources, tmp_path):
    raw = raw_frame()
    resources = {**resources, "cleaning": CleaningResource(spill_dir=str(tmp_path / "spill"), workers=2, chunk_rows=3)}
    result = materialize([stub("raw_issues", raw), clean], instance=instance, resources=resources)
    assert result.success

    stored = resources["parquet_io_manager"].read(["cleaned_issues"], None)
    expected = clean_issues(raw).cleaned
    stored = stored.sort_values("issue_id").reset_index(drop=True)
    assert stored["issue_id"].tolist() == expected["issue_id"].tolist()
    assert stored["body"].tolist() == expected["body"].tolist()
    assert stored["dup_cluster"].tolist() == expected["dup_cluster"].tolist()
    assert "split" not in stored.columns  # splits belong to the snapshot
    # The spill folder is scratch: nothing is left behind once the step is done.
    assert not any((tmp_path / "spill").iterdir())
    metadata = result.asset_materializations_for_node("clean")[0].metadata
    assert metadata["row_count"].value == len(expected)
