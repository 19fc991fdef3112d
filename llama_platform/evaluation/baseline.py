"""The classical baseline: H2O AutoML on TF-IDF text features plus the Feast features.

- Text: title + body as character 2-4-grams (TF-IDF, scikit-learn), reduced to `svd_dims` with
  TruncatedSVD. Character n-grams need no tokenizer, so Gitee's Chinese text and English share
  one vectoriser. Fitted on the train split only.
- Numbers: the Feast features that are known when an issue is filed (lengths, code blocks,
  redactions, repo and author history); `LEAKY_FEATURES` describe the issue's future and are left out.
- Target: the *primary* label, one multiclass AutoML run. Its class probabilities are a score
  per label that sums to 1, exactly like the fine-tuned model's (softmax over the labels), so the
  same decision rule (top label + any >= threshold) and the same calibration metrics apply. One
  model per label would need four AutoML runs inside the same time box.
- Splits: AutoML trains on `train`, ranks models on `val`; `test` is only predicted.

The H2O JVM listens on 127.0.0.1 only and is shut down when `h2o_cluster()` exits.
"""

from __future__ import annotations

import contextlib
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

# Issue-level columns that describe the snapshot's present, not the moment of filing.
LEAKY_FEATURES = frozenset({"n_comments", "is_closed"})
TARGET = "target_label"


@dataclass
class BaselineResult:
    scores: np.ndarray  # (n_test, L) class probabilities in `labels` order
    leader: str
    leaderboard: pd.DataFrame
    feature_columns: list[str]
    seconds: float
    variant_scores: dict[str, np.ndarray] = field(default_factory=dict)  # ablation: name -> (n_test, L)


def usable_feature_columns(df: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Numeric/bool columns a model may use at filing time."""
    skip = set(LEAKY_FEATURES) | set(exclude)
    return [
        c for c in df.columns
        if c not in skip and (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]))
    ]


def text_features(
    train_text: Sequence[str], other_texts: Sequence[Sequence[str]], svd_dims: int = 64, seed: int = 0
) -> tuple[np.ndarray, list[np.ndarray]]:
    """TF-IDF + TruncatedSVD fitted on `train_text`, applied to it and to each of `other_texts`."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, max_features=50_000, sublinear_tf=True)
    x_train = tfidf.fit_transform(train_text)
    dims = max(1, min(svd_dims, x_train.shape[1] - 1, x_train.shape[0] - 1))
    svd = TruncatedSVD(n_components=dims, random_state=seed)
    return svd.fit_transform(x_train), [svd.transform(tfidf.transform(t)) for t in other_texts]


def _free_port_pair() -> int:
    """A port p with p and p+1 free on 127.0.0.1 (H2O uses both); found by binding, not guessing."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair on 127.0.0.1 for H2O")


@contextlib.contextmanager
def h2o_cluster(nthreads: int = 2, max_mem_size: str = "1G") -> Iterator[object]:
    """A private H2O JVM on 127.0.0.1, shut down on exit (also when training fails)."""
    import h2o

    h2o.init(
        ip="127.0.0.1", port=_free_port_pair(), bind_to_localhost=True, nthreads=nthreads,
        max_mem_size=max_mem_size, verbose=False, name=f"llama-baseline-{time.time_ns()}",
    )
    h2o.no_progress()
    try:
        yield h2o.connection()
    finally:
        h2o.cluster().shutdown()


def _frame(features: np.ndarray, numeric: pd.DataFrame, target: Sequence[str] | None):
    import h2o

    cols = {f"text_{i}": features[:, i] for i in range(features.shape[1])}
    df = pd.DataFrame(cols, index=numeric.index)
    for c in numeric.columns:
        df[c] = pd.to_numeric(numeric[c], errors="coerce").astype(float)
    if target is not None:
        df[TARGET] = list(target)
    frame = h2o.H2OFrame(df)
    if target is not None:
        frame[TARGET] = frame[TARGET].asfactor()
    return frame


def feature_groups(columns: Sequence[str]) -> dict[str, list[str]]:
    """The Feast feature groups among `columns`, by view: issue text stats, repo history, author history."""
    groups = {
        "repo": [c for c in columns if c.startswith("repo_")],
        "author": [c for c in columns if c.startswith("author_")],
    }
    groups["issue"] = [c for c in columns if c not in groups["repo"] and c not in groups["author"]]
    return {k: v for k, v in groups.items() if v}


def ablation_variants(columns: Sequence[str]) -> dict[str, list[str]]:
    """Feature sets for the ablation: every feature, each group left out in turn, and text only."""
    variants = {"all": list(columns)}
    for group, cols in feature_groups(columns).items():
        variants[f"without {group}"] = [c for c in columns if c not in cols]
    variants["text only"] = []
    return variants


def train_h2o_baseline(
    train: pd.DataFrame,
    val: pd.DataFrame,
    test: pd.DataFrame,
    labels: Sequence[str],
    feature_columns: Sequence[str],
    text_column: str = "text",
    label_column: str = "label",
    max_runtime_secs: int = 30,
    seed: int = 0,
    nthreads: int = 2,
    max_mem_size: str = "1G",
    svd_dims: int = 64,
    variants: dict[str, Sequence[str]] | None = None,
) -> BaselineResult:
    """Fit the baseline on `train` (ranked on `val`) and return its label scores on `test`.

    `variants` (name -> feature columns, e.g. from `ablation_variants`) fits one more AutoML per
    entry in the same H2O cluster, each with the same time box; their test scores come back in
    `BaselineResult.variant_scores`.
    """
    from h2o.automl import H2OAutoML

    variants = dict(variants or {})
    needed = set(feature_columns).union(*[set(v) for v in variants.values()]) if variants else set(feature_columns)
    for name, df in (("train", train), ("val", val), ("test", test)):
        missing = [c for c in (text_column, label_column, *sorted(needed)) if c not in df.columns]
        if missing:
            raise ValueError(f"{name} rows lack columns {missing}")
    if train[label_column].nunique() < 2:
        raise ValueError("the baseline needs at least two labels among the training rows")
    started = time.monotonic()
    x_train, (x_val, x_test) = text_features(
        train[text_column].fillna("").tolist(),
        [val[text_column].fillna("").tolist(), test[text_column].fillna("").tolist()],
        svd_dims=svd_dims, seed=seed,
    )
    feature_columns = list(feature_columns)
    all_columns = sorted(needed)
    text_cols = [f"text_{i}" for i in range(x_train.shape[1])]

    def fit(columns: Sequence[str], frames) -> tuple[np.ndarray, str, pd.DataFrame]:
        train_fr, val_fr, test_fr = frames
        # Deep learning and stacked ensembles rarely fit a 30-second box on 2 cores; the rest does.
        aml = H2OAutoML(
            max_runtime_secs=max_runtime_secs, seed=seed, nfolds=0, verbosity=None,
            exclude_algos=["DeepLearning", "StackedEnsemble"], sort_metric="logloss",
        )
        aml.train(x=text_cols + list(columns), y=TARGET, training_frame=train_fr, validation_frame=val_fr,
                  leaderboard_frame=val_fr)
        if aml.leader is None:
            raise RuntimeError(f"H2O AutoML trained no model within {max_runtime_secs}s")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "single-thread conversion" advice: the frames are small
            predicted = aml.leader.predict(test_fr).as_data_frame()
            leaderboard = aml.leaderboard.as_data_frame().head(10)
        # A label missing from the training rows has no probability column: it scores 0.
        scores = np.column_stack([predicted[l].to_numpy(float) if l in predicted else np.zeros(len(test)) for l in labels])
        return np.clip(scores, 0.0, 1.0), str(aml.leader.model_id), leaderboard

    with h2o_cluster(nthreads=nthreads, max_mem_size=max_mem_size):
        frames = (
            _frame(x_train, train[all_columns], train[label_column]),
            _frame(x_val, val[all_columns], val[label_column]),
            _frame(x_test, test[all_columns], None),
        )
        scores, leader, leaderboard = fit(feature_columns, frames)
        variant_scores = {name: fit(cols, frames)[0] for name, cols in variants.items()}
    return BaselineResult(scores, leader, leaderboard, feature_columns, time.monotonic() - started, variant_scores)
