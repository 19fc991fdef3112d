"""Real Llama 4 checkpoints in Hugging Face layout: load both classes from a folder and from S3
(SeaweedFS) through the trainer's path, import them under a content hash, refuse tampering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import Llama4ForCausalLM

from llama_platform.training.model import load_pretrained
from llama_platform.training.registry import MANIFEST_FILE, build_manifest, import_model
from llama_platform_tests.training.checkpoints import write_checkpoint


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    folder = tmp_path_factory.mktemp("causal")
    return folder, write_checkpoint(folder, "causal", seed=1)


@pytest.fixture(scope="module")
def conditional_dir(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    folder = tmp_path_factory.mktemp("conditional")
    return folder, write_checkpoint(folder, "conditional", seed=2)


@pytest.fixture()
def aws_env(s3_server, monkeypatch):
    """The pod's view: endpoint and keys in the standard AWS_* variables (from a k8s Secret)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_server


def test_checkpoints_use_the_real_layout(causal_dir, conditional_dir):
    for folder, _ in (causal_dir, conditional_dir):
        names = {p.name for p in folder.iterdir()}
        assert {"config.json", "model.safetensors.index.json", "tokenizer.json"} <= names
        shards = set(json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"].values())
        assert len(shards) > 1 and shards <= names


def test_causal_checkpoint_loads_with_its_weights_and_tokenizer(causal_dir, tmp_path):
    folder, original = causal_dir
    loaded = load_pretrained(str(folder), tmp_path, dtype=torch.float32)
    assert isinstance(loaded.model, Llama4ForCausalLM)
    assert loaded.info["source_class"] == "Llama4ForCausalLM" and loaded.info["kind"] == "pretrained"
    assert loaded.info["model_hash"] == build_manifest(folder)["model_hash"]
    want = original.state_dict()
    got = loaded.model.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert loaded.tokenizer("Labels: bug").input_ids[0] == loaded.tokenizer.bos_token_id
    assert loaded.tokenizer.pad_token_id is not None


def test_conditional_generation_checkpoint_loads_text_only(conditional_dir, tmp_path):
    folder, original = conditional_dir
    loaded = load_pretrained(str(folder), tmp_path, dtype=torch.float32)
    assert isinstance(loaded.model, Llama4ForCausalLM)
    assert loaded.info["source_class"] == "Llama4ForConditionalGeneration"
    assert loaded.info["skipped_tensors"] > 0  # the vision tower and projector were not loaded
    want = original.state_dict()
    got = loaded.model.state_dict()
    assert all(torch.equal(v, want[f"language_model.{k}"]) for k, v in got.items())
    assert not any("vision" in name for name, _ in loaded.model.named_parameters())
    # The text model computes what the full model's language model computes. (Text-only
    # forward of Llama4ForConditionalGeneration itself fails in transformers 5.24: it reads
    # `image_outputs` off a text-only output, another reason to train the language model alone.)
    ids = torch.randint(4, loaded.model.config.vocab_size, (1, 10))
    with torch.no_grad():
        a = loaded.model(input_ids=ids).logits
        b = original.eval().language_model(input_ids=ids).logits
    torch.testing.assert_close(a, b)


def test_a_broken_or_wrong_folder_is_refused(causal_dir, tmp_path):
    folder, _ = causal_dir
    with pytest.raises(ValueError, match="model hash"):
        load_pretrained(str(folder), tmp_path, expected_hash="0" * 64)
    half = tmp_path / "half"
    half.mkdir()
    for p in folder.iterdir():
        if not p.name.startswith("model-00001"):
            (half / p.name).write_bytes(p.read_bytes())
    with pytest.raises(ValueError, match="missing shards"):
        load_pretrained(str(half), tmp_path / "c")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="not a Hugging Face model folder: missing .*safetensors"):
        import_model(empty, str(tmp_path / "store"))


def test_import_to_s3_then_load_from_s3_verifies_hash(causal_dir, aws_env, s3_bucket, tmp_path):
    folder, original = causal_dir
    client = aws_env.client()
    result = import_model(folder, f"s3://{s3_bucket}", name="tiny-llama4", client=client)
    manifest = build_manifest(folder)
    assert result["model_hash"] == manifest["model_hash"] and result["uploaded"]
    assert result["uri"] == f"s3://{s3_bucket}/models/tiny-llama4/{manifest['model_hash']}"
    key = f"models/tiny-llama4/{manifest['model_hash']}/{MANIFEST_FILE}"
    stored = json.loads(client.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
    assert stored["files"]["config.json"]["sha256"] == manifest["files"]["config.json"]["sha256"]
    assert len(stored["files"]) == len(manifest["files"])
    # Same content again: nothing uploaded.
    assert not import_model(folder, f"s3://{s3_bucket}", name="tiny-llama4", client=client)["uploaded"]

    loaded = load_pretrained(result["uri"], tmp_path / "dl", expected_hash=result["model_hash"], dtype=torch.float32)
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in loaded.model.state_dict().items())

    # A shard changed in the store after import: the manifest no longer matches, loading refuses.
    shard = next(n for n in manifest["files"] if n.startswith("model-0000"))
    client.put_object(Bucket=s3_bucket, Key=f"models/tiny-llama4/{manifest['model_hash']}/{shard}", Body=b"garbage")
    with pytest.raises(ValueError, match=f"{shard} has sha256"):
        load_pretrained(result["uri"], tmp_path / "dl2", expected_hash=result["model_hash"])


def test_models_import_cli(causal_dir, s3_server, s3_bucket, tmp_path):
    folder, _ = causal_dir
    env = {
        "PATH": "/usr/bin:/bin", "LLAMA_PLATFORM_HOME": str(tmp_path / "home"),
        "LLAMA_PLATFORM_STORE_URL": f"s3://{s3_bucket}", "LLAMA_PLATFORM_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    proc = subprocess.run([sys.executable, "-m", "llama_platform.cli", "models", "import", str(folder),
                           "--name", "tiny"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["model_hash"] == build_manifest(folder)["model_hash"]
    assert out["uri"].startswith(f"s3://{s3_bucket}/models/tiny/")
    assert s3_server.client().head_object(Bucket=s3_bucket, Key="models/tiny/latest.json")
    assert s3_server.access_key not in proc.stdout + proc.stderr


def test_train_from_an_imported_checkpoint_on_s3(conditional_dir, aws_env, s3_bucket, tmp_path, training_set_path,
                                                  training_set):
    """The same entrypoint fine-tunes a real-layout checkpoint read from the store; the model
    directory names the base by URI + hash instead of copying it, and loads back."""
    from llama_platform.training.inference import TriageModel
    from llama_platform.training.train import train
    from llama_platform_tests.training.conftest import short_config

    folder, _ = conditional_dir
    imported = import_model(folder, f"s3://{s3_bucket}", name="tiny-cg", client=aws_env.client())
    config = short_config(tmp_path, training_set_path, max_steps=3, model_path=imported["uri"],
                          model_hash=imported["model_hash"], registered_model_name=None, mlflow_system_metrics=False)
    result = train(config, log=lambda m: None, show_progress=False)
    assert result["base_model_kind"] == "pretrained" and result["base_model_hash"] == imported["model_hash"]
    model_dir = Path(result["model_dir"])
    assert not (model_dir / "base").exists()
    meta = json.loads((model_dir / "triage.json").read_text())
    assert meta["base_model"]["path"] == imported["uri"]
    assert meta["base_model"]["source_class"] == "Llama4ForConditionalGeneration"
    adapter = json.loads((model_dir / "adapter" / "adapter_config.json").read_text())
    assert "lm_head" not in adapter["target_modules"]  # pretrained head: not adapted by default
    model = TriageModel.load(model_dir, device="cpu")
    val = training_set[training_set["split"] == "val"]
    assert model.loss(val["prompt"].tolist(), val["completion"].tolist()) == pytest.approx(result["val_loss"], rel=1e-4)

    bad = short_config(tmp_path / "bad", training_set_path, max_steps=3, model_path=imported["uri"],
                       model_hash="f" * 64, registered_model_name=None)
    with pytest.raises(ValueError, match="model hash"):
        train(bad, log=lambda m: None, show_progress=False)
