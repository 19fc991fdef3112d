import pandas as pd
import pytest

from llama_platform.data.splits import assign_splits


def _clusters(n: int) -> pd.Series:
    return pd.Series([f"github:acme/app#{i}" for i in range(n)])


def test_splits_are_deterministic_and_close_to_fractions():
    ids = _clusters(5000)
    first = assign_splits(ids)
    assert first.equals(assign_splits(ids.copy()))
    shares = first.value_counts(normalize=True)
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["val"] - 0.1) < 0.02 and abs(shares["test"] - 0.1) < 0.02
    assert first.name == "split"


def test_a_cluster_never_straddles_splits_and_order_does_not_matter():
    ids = pd.Series(["c1"] * 5 + ["c2"] * 5 + [f"x{i}" for i in range(200)])
    splits = assign_splits(ids)
    assert splits.groupby(ids).nunique().max() == 1
    shuffled = ids.sample(frac=1.0, random_state=3)
    assert assign_splits(shuffled).sort_index().equals(splits)


def test_adding_rows_does_not_move_existing_clusters():
    small, big = _clusters(300), _clusters(1000)
    assert assign_splits(big).iloc[:300].equals(assign_splits(small))


def test_seed_changes_the_assignment():
    ids = _clusters(500)
    assert not assign_splits(ids, seed="v1").equals(assign_splits(ids, seed="v2"))


def test_zero_fraction_split_is_empty():
    assert set(assign_splits(_clusters(500), fractions=(0.9, 0.1, 0.0))) == {"train", "val"}


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)])
def test_bad_fractions_are_rejected(fractions):
    with pytest.raises(ValueError):
        assign_splits(_clusters(3), fractions=fractions)


def test_null_cluster_is_rejected():
    with pytest.raises(ValueError):
        assign_splits(pd.Series(["a", None]))
