"""Hyperparameter search: one search space, run locally by Optuna or on k8s by Katib (k8s/katib.py).

Each trial runs the training entrypoint itself (`python -m llama_platform.training.train --config
trial.json`, the command a Katib trial pod runs) with the trial's values written into a copy of a
base TrainConfig, and reads the objective from the trial's result.json. The objective is the
*validation* loss: the test split stays untouched for model_evaluation. Trials log to MLflow as
child runs of one study run (the `mlflow.parentRunId` tag, which is how MLflow nests runs made by
other processes) and register no model versions.

    python -m llama_platform.evaluation.search study --base-config train.json --trials 8 --out best.json
    python -m llama_platform.evaluation.search trial-config --base-config train.json \
        --set learning_rate=0.001 --set lora_r=8 --out /tmp/trial.json    # what a Katib trial runs first
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

OBJECTIVE = "val_loss"  # minimised; train.py prints it and writes it to result.json


@dataclass(frozen=True)
class Param:
    """One searched TrainConfig field. kind: "double" (log scale if `log`), "int" or "categorical"."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: int | None = None
    log: bool = False
    choices: tuple = ()


SEARCH_SPACE: tuple[Param, ...] = (
    Param("learning_rate", "double", 5e-4, 1e-2, log=True),
    Param("lora_r", "categorical", choices=(4, 8, 16)),
    Param("max_steps", "int", 40, 200, step=40),
)


def suggest(trial, space: Sequence[Param] = SEARCH_SPACE) -> dict[str, Any]:
    """The trial's values for every parameter of `space` (Optuna's suggest API)."""
    values = {}
    for p in space:
        if p.kind == "double":
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        elif p.kind == "int":
            values[p.name] = trial.suggest_int(p.name, p.low, p.high, step=p.step or 1)
        elif p.kind == "categorical":
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        else:
            raise ValueError(f"unknown parameter kind {p.kind!r} for {p.name}")
    return values


def run_trial(base: dict[str, Any], values: dict[str, Any], trial_dir: Path, tags: dict[str, str]) -> dict[str, Any]:
    """Train once through the entrypoint with `values` over `base`; returns its result.json."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    config = {
        **base, **values,
        "output_dir": str(trial_dir / "output"),
        "registered_model_name": None,  # trials are experiments, not model versions
        "run_name": trial_dir.name,
        "tags": {**base.get("tags", {}), **tags},
    }
    path = trial_dir / "train_config.json"
    path.write_text(json.dumps(config, indent=2))
    done = subprocess.run([sys.executable, "-m", "llama_platform.training.train", "--config", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"trial {trial_dir.name} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads((trial_dir / "output" / "result.json").read_text())


def run_study(
    base_config: dict[str, Any],
    work_dir: Path,
    n_trials: int,
    seed: int = 0,
    space: Sequence[Param] | None = None,
    study_name: str = "triage-hparams",
) -> dict[str, Any]:
    """An Optuna TPE study of `n_trials` over `space` (default SEARCH_SPACE); returns the best
    values, the objective and the MLflow run ids."""
    import mlflow
    import optuna

    space = space or SEARCH_SPACE

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    uri = base_config["mlflow_tracking_uri"]
    client = mlflow.tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = base_config.get("mlflow_experiment", "llama-platform")
    exp = client.get_experiment_by_name(experiment)
    experiment_id = exp.experiment_id if exp else client.create_experiment(experiment)
    parent = client.create_run(experiment_id, run_name=study_name, tags={"optuna.study": study_name})
    parent_id = parent.info.run_id
    client.log_param(parent_id, "n_trials", n_trials)
    client.log_param(parent_id, "search_space", json.dumps([p.__dict__ for p in space]))
    client.log_param(parent_id, "objective", f"minimize {OBJECTIVE}")
    trials: list[dict[str, Any]] = []

    def objective(trial) -> float:
        values = suggest(trial, space)
        result = run_trial(base_config, values, work_dir / f"trial-{trial.number:03d}",
                           {"mlflow.parentRunId": parent_id, "optuna.study": study_name, "optuna.trial": str(trial.number)})
        trials.append({"number": trial.number, "values": values, OBJECTIVE: result[OBJECTIVE],
                       "mlflow_run_id": result.get("mlflow_run_id")})
        return float(result[OBJECTIVE])

    study = optuna.create_study(study_name=study_name, direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    try:
        study.optimize(objective, n_trials=n_trials)
        best = {"best_values": study.best_params, f"best_{OBJECTIVE}": study.best_value,
                "best_trial": study.best_trial.number, "trials": trials, "mlflow_parent_run_id": parent_id}
        for k, v in study.best_params.items():
            client.log_param(parent_id, f"best.{k}", v)
        client.log_metric(parent_id, f"best_{OBJECTIVE}", study.best_value)
        client.log_dict(parent_id, best, "study.json")
        client.set_terminated(parent_id, "FINISHED")
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    return best


def trial_config(base: dict[str, Any], assignments: Sequence[str], space: Sequence[Param] | None = None) -> dict[str, Any]:
    """`base` with NAME=VALUE assignments of searched parameters, typed by the search space
    (Katib substitutes trial values into the command line as strings)."""
    params = {p.name: p for p in (space or SEARCH_SPACE)}
    values: dict[str, Any] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or name not in params:
            raise ValueError(f"expected NAME=VALUE with NAME in {sorted(params)}, got {item!r}")
        p = params[name]
        value = float(raw) if p.kind == "double" else int(float(raw)) if p.kind == "int" else type(p.choices[0])(raw)
        if p.kind == "categorical" and value not in p.choices:
            raise ValueError(f"{name}={raw} is not one of {list(p.choices)}")
        if p.kind != "categorical" and not p.low <= value <= p.high:
            raise ValueError(f"{name}={raw} is outside [{p.low}, {p.high}]")
        values[name] = value
    return {**base, **values, "registered_model_name": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    study = sub.add_parser("study", help="run a local Optuna study")
    study.add_argument("--base-config", required=True, help="TrainConfig JSON the trials start from")
    study.add_argument("--trials", type=int, default=8)
    study.add_argument("--work-dir", default=None, help="where trial folders go (default: next to --out)")
    study.add_argument("--seed", type=int, default=0)
    study.add_argument("--out", required=True, help="where to write the best config and trial table (JSON)")
    one = sub.add_parser("trial-config", help="write one trial's TrainConfig (base + NAME=VALUE)")
    one.add_argument("--base-config", required=True)
    one.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    one.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    base = json.loads(Path(args.base_config).read_text())
    out = Path(args.out)
    if args.command == "trial-config":
        out.write_text(json.dumps(trial_config(base, args.set), indent=2))
        return 0
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    best = run_study(base, Path(args.work_dir) if args.work_dir else out.parent / "search", args.trials, args.seed)
    out.write_text(json.dumps({**best, "best_config": {**base, **best["best_values"]}}, indent=2))
    print(json.dumps({k: best[k] for k in ("best_values", f"best_{OBJECTIVE}", "best_trial")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
