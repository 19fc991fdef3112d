from __future__ import annotations

import pytest
import torch
from transformers import Llama4ForCausalLM

from llama_platform.training.config import TrainConfig
from llama_platform.training.model import apply_lora, build_model, moe_layer_indices, tiny_llama4_config


@pytest.fixture(scope="module")
def config():
    return tiny_llama4_config(vocab_size=300)


def test_tiny_config_forward_and_moe_layers(config):
    model = build_model(config, seed=0)
    assert isinstance(model, Llama4ForCausalLM)
    assert moe_layer_indices(model) == [1, 3]
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    ids = torch.randint(3, 300, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # right padding
    out = model(input_ids=ids, attention_mask=mask, labels=ids)
    assert out.logits.shape == (2, 12, 300)
    assert torch.isfinite(out.loss)


def test_build_is_deterministic_by_seed(config):
    a, b, c = build_model(config, 1), build_model(config, 1), build_model(config, 2)
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(pa[name], pb[name])
    assert not torch.equal(pa[name], pc[name])


def test_lora_trains_only_adapter_params(config):
    model = apply_lora(build_model(config, seed=0), r=4, alpha=8)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_proj.lora_A" in n for n in trainable)
    # The MoE router and fused experts are never wrapped (FIELD-NOTES: router returns a tuple).
    assert not any("router" in n or "experts.gate_up_proj" in n for n in trainable)

    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(3, 300, (4, 16))
    for _ in range(2):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    after = dict(model.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in frozen_before.items())
    assert any(not torch.equal(after[n], v) for n, v in lora_before.items())


def test_train_config_json_round_trip_and_validation(tmp_path):
    cfg = TrainConfig(training_set_path="a.parquet", output_dir="out", mlflow_tracking_uri="sqlite:///x.db",
                      registered_model_name=None, tags={"k": "v"}, max_steps=7)
    cfg.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(ValueError, match="file: URI"):
        TrainConfig(training_set_path="a", output_dir="o", mlflow_tracking_uri="file:///tmp/mlruns")
    with pytest.raises(ValueError, match="max_steps"):
        TrainConfig(training_set_path="a", output_dir="o", mlflow_tracking_uri="sqlite:///x.db", max_steps=0)
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({**cfg.to_dict(), "lr": 1})


def test_public_dict_drops_tracking_credentials():
    cfg = TrainConfig(training_set_path="a", output_dir="o",
                      mlflow_tracking_uri="https://bob:s3cr3t-token@mlflow.example:5000/path")
    public = cfg.public_dict()
    assert public["mlflow_tracking_uri"] == "https://mlflow.example:5000/path"
    assert "s3cr3t" not in str(public)
    plain = TrainConfig(training_set_path="a", output_dir="o", mlflow_tracking_uri="sqlite:////tmp/m.db")
    assert plain.public_dict()["mlflow_tracking_uri"] == "sqlite:////tmp/m.db"


def test_training_model_and_method_settings_reach_the_config():
    from llama_platform.settings import SettingsError, load_settings

    s = load_settings({"LLAMA_PLATFORM_HOME": "/tmp/unused-home", "LLAMA_PLATFORM_TRAIN_METHOD": "qlora",
                       "LLAMA_PLATFORM_TRAIN_MODEL_PATH": "s3://models/scout/abc", "LLAMA_PLATFORM_TRAIN_MODEL_HASH": "abc"})
    assert (s.train_method, s.train_model_path, s.train_model_hash) == ("qlora", "s3://models/scout/abc", "abc")
    with pytest.raises(SettingsError, match="LLAMA_PLATFORM_TRAIN_METHOD"):
        load_settings({"LLAMA_PLATFORM_HOME": "/tmp/unused-home", "LLAMA_PLATFORM_TRAIN_METHOD": "all-linear"})
    with pytest.raises(ValueError, match="qlora' needs a pretrained model_path"):
        TrainConfig(training_set_path="a", output_dir="o", mlflow_tracking_uri="sqlite:///x.db", method="qlora")
