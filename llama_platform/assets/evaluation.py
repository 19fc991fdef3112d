"""Stage 7: held-out evaluation and the promotion gate.

On the snapshot's *test* split (never used for training or model selection) the fine-tuned model
(MLflow alias `candidate`), the current `champion`, the H2O baseline and a majority-class baseline
are scored with the same metrics and bootstrap intervals, overall and by forge and language. The
gate (evaluation/gate.py) decides; only a promotion moves the `champion` alias, which serving loads.
"""

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from llama_platform.assets.automation import follow_upstream
from llama_platform.assets.baseline import ablation_scores, baseline_scores
from llama_platform.assets.common import code_version_of, png_markdown
from llama_platform.assets.lineage import upstream_metadata
from llama_platform.data.snapshot import read_snapshot_columns
from llama_platform.evaluation.errors import predictions_frame, to_parquet_bytes
from llama_platform.evaluation.gate import Decision, GatePolicy, decide
from llama_platform.evaluation.metrics import (
    Predictions,
    by_group,
    choose_labels,
    constant_predictions,
    evaluate_predictions,
    paired_difference,
    from_triage_outputs,
    indicator,
    primary_confusion,
    summary_row,
)
from llama_platform.evaluation.plots import comparison_plot, confusion_plot, reliability_plot
from llama_platform.resources.evaluation import EvaluationResource
from llama_platform.resources.mlflow import MLflowResource
from llama_platform.resources.object_store import ObjectStoreResource
from llama_platform.training.inference import DEFAULT_THRESHOLD, TriageModel
from llama_platform.training.prompts import LABELS

CANDIDATE, CHAMPION = "candidate", "champion"
FINETUNED, H2O, MAJORITY = "fine-tuned", "h2o", "majority"


def _version_by_alias(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:  # no such alias (or model) yet
        return None


def _predict(model: TriageModel, name: str, prompts: list[str]) -> Predictions:
    return from_triage_outputs(name, model.predict(prompts), LABELS)


def score_alias(mlflow: MLflowResource, alias: str, prompts: list[str]) -> Predictions:
    """Download the registered model version behind `alias` and score `prompts` with it."""
    from llama_platform.training.mlflow_model import download_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"models:/{mlflow.registered_model_name}@{alias}"
        model_dir = download_model_dir(uri, tmp, tracking_uri=mlflow.tracking_uri)
        return _predict(TriageModel.load(model_dir), alias, prompts)


def _groups(context, object_store: ObjectStoreResource, issue_ids: list[str]) -> pd.DataFrame:
    """Forge (`source`) and language (`lang`) of each test issue, from the training set's snapshot."""
    version = upstream_metadata(context, "training_set")["snapshot_version"]
    cols = read_snapshot_columns(object_store.location(), version, ["issue_id", "source", "lang"]).set_index("issue_id")
    missing = [i for i in issue_ids if i not in cols.index]
    if missing:
        raise ValueError(f"{len(missing)} test issues are not in snapshot {version}, e.g. {missing[:3]}")
    return cols.loc[issue_ids]


def _table(rows: list[dict]) -> MetadataValue:
    return MetadataValue.md(pd.DataFrame(rows).to_markdown(index=False))


def _per_label_rows(results: dict[str, dict]) -> list[dict]:
    rows = []
    for label in LABELS:
        row = {"label": label, "support": next(iter(results.values()))["per_label"][label]["support"]}
        for name, r in results.items():
            f1 = r["per_label"][label]["f1"]
            row[f"{name} F1"] = f"{f1['value']:.3f} [{f1['low']:.3f}, {f1['high']:.3f}]"
        row["fine-tuned P/R"] = "{:.3f} / {:.3f}".format(
            results[FINETUNED]["per_label"][label]["precision"]["value"], results[FINETUNED]["per_label"][label]["recall"]["value"]
        )
        rows.append(row)
    return rows


def _breakdown_rows(kind: str, per_model: dict[str, dict[str, dict]]) -> list[dict]:
    rows = []
    groups = sorted(next(iter(per_model.values())))
    for g in groups:
        row = {kind: g}
        for name, by in per_model.items():
            r = by[g]
            row["n"] = r["n"]
            row[name] = "-" if "skipped" in r else (
                f"{r['micro_f1']['value']:.3f} [{r['micro_f1']['low']:.3f}, {r['micro_f1']['high']:.3f}]"
            )
        rows.append(row)
    return rows


def _ablation_rows(truth: np.ndarray, full: Predictions, variants: dict[str, pd.DataFrame], kw: dict) -> list[dict]:
    """Does each feature group help the baseline? micro-F1(all features) - micro-F1(without the group),
    paired-bootstrap CI: a lower bound above 0 means the group helps."""
    rows = []
    for name, frame in variants.items():
        scores = frame.to_numpy(float)
        pred = Predictions(name, scores, choose_labels(scores, DEFAULT_THRESHOLD))
        own = evaluate_predictions(truth, pred, LABELS, **kw)["micro_f1"]
        gain = paired_difference(truth, full, pred, LABELS, **kw)
        verdict = "helps" if gain["low"] > 0 else "hurts" if gain["high"] < 0 else "no clear effect"
        rows.append({"h2o variant": name, "micro_f1": f"{own['value']:.3f} [{own['low']:.3f}, {own['high']:.3f}]",
                     "all − variant": f"{gain['value']:+.3f} [{gain['low']:+.3f}, {gain['high']:+.3f}]",
                     "left-out group": verdict if name.startswith("without") else "-"})
    return rows


def _record_decision(client, name: str, version: str, decision: Decision, micro_f1: float) -> None:
    """Tags and description on the candidate's model version; `champion` moves only on promote."""
    verdict = "promote" if decision.promote else "refuse"
    client.set_model_version_tag(name, version, "gate.decision", verdict)
    client.set_model_version_tag(name, version, "gate.reasons", json.dumps(decision.reasons)[:4900])
    client.set_model_version_tag(name, version, "gate.test_micro_f1", f"{micro_f1:.4f}")
    # Kept after what training wrote (where the version came from); a re-evaluation replaces its own part.
    origin = (client.get_model_version(name, version).description or "").split("Promotion gate:")[0].rstrip()
    gate = f"Promotion gate: {decision.summary()}"
    client.update_model_version(name, version, description=(f"{origin}\n\n{gate}" if origin else gate)[:4900])
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)


@asset(
    group_name="training",
    automation_condition=follow_upstream,
    deps=["finetuned_checkpoint"],
    description="Test-split F1 (micro, macro, per label), calibration and forge/language breakdowns with bootstrap "
    "CIs for the fine-tuned model vs champion, H2O and majority baselines; the promotion gate moves `champion`.",
    kinds={"pytorch", "mlflow"},
    code_version=code_version_of("assets/evaluation.py", "evaluation", "training/inference.py"),
    tags={"stage": "evaluate"},
    check_specs=[
        AssetCheckSpec(
            "eval_sane",
            asset="model_evaluation",
            blocking=True,
            description="metrics are finite and the model predicts valid labels (blocks deployment otherwise)",
        ),
        AssetCheckSpec(
            "beats_majority_baseline",
            asset="model_evaluation",
            description="micro-F1 at least the majority-class baseline's (warning: the gate decides promotion)",
        ),
        AssetCheckSpec(
            "promotion_gate",
            asset="model_evaluation",
            blocking=True,
            description="the candidate beats champion and baselines outside the CI with no per-label regression; "
            "only then is it `champion` (blocks deployment otherwise)",
        ),
    ],
)
def model_evaluation(
    context: AssetExecutionContext,
    evaluation: EvaluationResource,
    training_set: pd.DataFrame,
    baseline_model: pd.DataFrame,
    mlflow: MLflowResource,
    object_store: ObjectStoreResource,
) -> MaterializeResult:
    ckpt = upstream_metadata(context, "finetuned_checkpoint")
    test = training_set[training_set["split"] == "test"]
    if test.empty:
        raise ValueError("training_set has no test rows: nothing held out to evaluate on")
    prompts, ids = test["prompt"].tolist(), test["issue_id"].tolist()
    truth = indicator(test["labels"].tolist(), LABELS)
    name, version = mlflow.registered_model_name, ckpt.get("model_version")
    version = str(version) if version is not None else None
    client = mlflow.client()
    if version is not None:
        current = _version_by_alias(client, name, CANDIDATE)
        if current is None or str(current.version) != version:
            client.set_registered_model_alias(name, CANDIDATE, version)  # if training did not already

    context.log.info(f"scoring {ckpt.get('model_uri', ckpt['model_dir'])} on {len(test)} test issues")
    candidate_model = TriageModel.load(ckpt["model_dir"])
    test_loss = candidate_model.loss(prompts, test["completion"].tolist())
    models = {FINETUNED: _predict(candidate_model, FINETUNED, prompts)}
    del candidate_model

    champion = _version_by_alias(client, name, CHAMPION)
    champion_is_candidate = champion is not None and str(champion.version) == version
    champion_note = None
    if champion is not None and not champion_is_candidate:
        from mlflow.exceptions import MlflowException

        try:
            models[CHAMPION] = score_alias(mlflow, CHAMPION, prompts)
        except (ValueError, OSError, MlflowException) as exc:
            # e.g. a champion trained with an older prompt format: it cannot read today's prompts.
            champion_note = f"champion v{champion.version} could not be scored ({exc}); compared with the baselines only"
            context.log.warning(champion_note)

    h2o_scores = baseline_scores(baseline_model, ids).to_numpy(float)
    models[H2O] = Predictions(H2O, h2o_scores, choose_labels(h2o_scores, DEFAULT_THRESHOLD))
    majority_label = training_set.loc[training_set["split"] == "train", "label"].value_counts().idxmax()
    models[MAJORITY] = constant_predictions(MAJORITY, len(test), LABELS, majority_label)

    kw = dict(n_resamples=evaluation.n_resamples, seed=evaluation.seed)
    results = {n: evaluate_predictions(truth, p, LABELS, **kw) for n, p in models.items()}
    groups = _groups(context, object_store, ids)
    breakdown = {
        kind: {n: by_group(truth, p, LABELS, groups[kind].tolist(), min_rows=evaluation.min_group_rows, **kw) for n, p in models.items()}
        for kind in ("source", "lang")
    }
    policy = GatePolicy(min_gain=evaluation.min_gain, max_label_drop=evaluation.max_label_drop,
                        n_resamples=evaluation.n_resamples, seed=evaluation.seed)
    micro = results[FINETUNED]["micro_f1"]["value"]
    sane = bool(np.isfinite(test_loss) and test_loss < 1e4 and 0.0 <= micro <= 1.0)
    if not sane:
        decision = Decision(False, [f"evaluation is not sane (test loss {test_loss}, micro-F1 {micro}): not promoted"],
                            policy=asdict(policy))
    elif champion_is_candidate:
        decision = Decision(True, [f"version {version} is already {CHAMPION}: nothing to change"], policy=asdict(policy))
    else:
        decision = decide(truth, LABELS, models[FINETUNED], {H2O: models[H2O], MAJORITY: models[MAJORITY]},
                          champion=models.get(CHAMPION), policy=policy)
        if champion_note:
            decision.reasons.append(champion_note)
    context.log.info(decision.summary())
    if not decision.promote and not evaluation.enforce_gate:
        context.log.warning(f"gate in advise mode: the refusal is recorded, {CHAMPION} is unchanged, deployment not blocked")
    if version is not None:
        _record_decision(client, name, version, decision, micro)

    primary = test["label"].tolist()
    plots = {
        "comparison": comparison_plot(results),
        "confusion": confusion_plot(primary_confusion(primary, models[FINETUNED], LABELS), LABELS,
                                    "fine-tuned: primary label vs top label"),
        "reliability": reliability_plot(results),
    }
    top1_accuracy = float(np.mean(np.array(LABELS)[models[FINETUNED].top1] == np.array(primary)))
    report = {"results": results, "breakdown": breakdown, "decision": decision.to_dict(), "test_loss": test_loss}
    if ckpt.get("mlflow_run_id"):
        run_id = str(ckpt["mlflow_run_id"])
        client.log_metric(run_id, "test_micro_f1", micro)
        client.log_metric(run_id, "test_macro_f1", results[FINETUNED]["macro_f1"]["value"])
        client.log_metric(run_id, "test_ece", results[FINETUNED]["ece"]["value"])
        client.log_dict(run_id, report, "evaluation/metrics.json")
        with tempfile.TemporaryDirectory() as tmp:
            for key, png in plots.items():
                (Path(tmp) / f"{key}.png").write_bytes(png)
            client.log_artifacts(run_id, tmp, "evaluation")

    # Per-issue predictions for the error-analysis notebook.
    base = test[["issue_id", "label", "labels"]].reset_index(drop=True)
    base[["source", "lang"]] = groups[["source", "lang"]].to_numpy()
    predictions_path = f"evaluations/{context.run_id}/predictions.parquet"
    object_store.location().write_bytes(
        predictions_path, to_parquet_bytes(predictions_frame(base, {k: v for k, v in models.items() if k != MAJORITY}, LABELS))
    )

    ablation = ablation_scores(baseline_model, ids)
    ablation_table = _ablation_rows(truth, models[H2O], ablation, kw) if ablation else []

    maj = results[MAJORITY]["micro_f1"]["value"]
    comparison = [summary_row(n, r) for n, r in results.items()]
    return MaterializeResult(
        metadata={
            "comparison": _table(comparison),
            "comparison_plot": png_markdown(plots["comparison"], "micro/macro F1 with 95% CIs"),
            "per_label": _table(_per_label_rows(results)),
            "confusion_matrix": png_markdown(plots["confusion"], "primary-label confusion"),
            "reliability": png_markdown(plots["reliability"], "top-label reliability"),
            "by_forge": _table(_breakdown_rows("source", breakdown["source"])),
            "by_language": _table(_breakdown_rows("lang", breakdown["lang"])),
            **({"feature_ablation": _table(ablation_table)} if ablation_table else {}),
            "gate_decision": "promote" if decision.promote else "refuse",
            "gate_enforced": evaluation.enforce_gate,
            "gate_reasons": MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
            "gate_differences": MetadataValue.json(decision.differences),
            "test_micro_f1": MetadataValue.float(micro),
            "test_macro_f1": MetadataValue.float(results[FINETUNED]["macro_f1"]["value"]),
            "test_loss": MetadataValue.float(float(test_loss)),
            "label_accuracy": MetadataValue.float(top1_accuracy),
            "test_examples": MetadataValue.int(len(test)),
            "predictions_path": predictions_path,
            "majority_label": str(majority_label),
            "model_uri": str(ckpt.get("model_uri", "")),
            "model_version": str(version or ""),
            "champion_version": str(champion.version) if champion is not None else "",
        },
        check_results=[
            AssetCheckResult(check_name="eval_sane", passed=sane, metadata={"test_loss": float(test_loss)}),
            AssetCheckResult(
                check_name="beats_majority_baseline",
                passed=bool(micro >= maj),
                severity=AssetCheckSeverity.WARN,
                metadata={"micro_f1": micro, "majority_micro_f1": maj},
            ),
            AssetCheckResult(
                check_name="promotion_gate",
                passed=decision.promote,
                # A WARN failure does not block: the "advise" mode of the local profile's tiny model.
                severity=AssetCheckSeverity.ERROR if evaluation.enforce_gate else AssetCheckSeverity.WARN,
                metadata={"decision": "promote" if decision.promote else "refuse",
                          "enforced": evaluation.enforce_gate,
                          "reasons": MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons))},
            ),
        ],
    )

