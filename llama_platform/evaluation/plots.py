"""PNG plots of the evaluation (bytes, for asset metadata and MLflow artifacts)."""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def comparison_plot(results: Mapping[str, dict], metrics: Sequence[str] = ("micro_f1", "macro_f1")) -> bytes:
    """Grouped bars: each model's metrics with their bootstrap intervals as error bars."""
    plt = _pyplot()
    names = list(results)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(metrics)
    x = np.arange(len(names))
    for k, metric in enumerate(metrics):
        vals = np.array([results[n][metric]["value"] for n in names])
        low = vals - np.array([results[n][metric]["low"] for n in names])
        high = np.array([results[n][metric]["high"] for n in names]) - vals
        ax.bar(x + k * width, vals, width, yerr=[low, high], capsize=3, label=metric)
    ax.set_xticks(x + width * (len(metrics) - 1) / 2, names)
    ax.set_ylim(0, 1)
    ax.set_title("held-out test split (95% bootstrap CI)")
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def confusion_plot(matrix: np.ndarray, labels: Sequence[str], title: str) -> bytes:
    """Primary-label confusion: rows are true primary labels, columns the model's top label."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted (top label)")
    ax.set_ylabel("true primary label")
    ax.set_title(title, fontsize=10)
    return _png(fig)


def reliability_plot(results: Mapping[str, dict]) -> bytes:
    """Top-label reliability curves (mean confidence vs accuracy per non-empty bin), one per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, r in results.items():
        rel = r["reliability"]
        keep = [i for i, c in enumerate(rel["count"]) if c > 0]
        ax.plot([rel["confidence"][i] for i in keep], [rel["accuracy"][i] for i in keep], marker="o",
                label=f"{name} (ECE {r['ece']['value']:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the top label")
    ax.set_ylabel("top label is a true label")
    ax.legend(fontsize=7)
    return _png(fig)
