"""Training, evaluation and inference of the issue-triage model (the training container's code).

Runnable on its own: no Dagster import beyond dagster-pipes (in train.main), settings are passed
in as a TrainConfig. Entry points:
    python -m llama_platform.training.train --config CONFIG.json
    python -m llama_platform.training.evaluate --model-dir D --data P --out metrics.json
Shared with the data and serving layers: prompts.format_prompt / format_completion / LABELS,
inference.TriageModel, mlflow_model.download_model_dir.
"""
