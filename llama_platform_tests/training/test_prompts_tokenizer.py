from __future__ import annotations

import pytest

from llama_platform.training.batching import IGNORE_INDEX, collate, encode_example
from llama_platform.training.prompts import (
    LABELS,
    LABELS_CUE,
    format_completion,
    format_prompt,
    parse_completion,
)
from llama_platform.training.tokenizer import load_tokenizer, train_tokenizer


def test_prompt_ends_with_cue_and_shows_features_sorted():
    prompt = format_prompt(
        "Crash\non start", "line one\n\n  line two", "acme/widgets", {"zeta": 0.123456, "alpha": 3, "skip": None}
    )
    lines = prompt.splitlines()
    assert lines[-1] == LABELS_CUE
    assert "Title: Crash on start" in lines
    assert "Body: line one line two" in lines
    assert lines.index("alpha: 3") < lines.index("zeta: 0.123")
    assert not any(line.startswith("skip") for line in lines)
    # Pure: same input, same text.
    assert prompt == format_prompt("Crash\non start", "line one\n\n  line two", "acme/widgets",
                                   {"alpha": 3, "zeta": 0.123456, "skip": None})


def test_long_body_is_cut_but_cue_kept():
    prompt = format_prompt("t", "word " * 5000, "r")
    assert len(prompt) < 2000 and prompt.endswith(LABELS_CUE)


def test_completion_puts_primary_first_then_label_order():
    assert format_completion(["docs", "bug"]) == " bug, docs"
    assert format_completion(["docs", "bug"], primary="docs") == " docs, bug"
    assert format_completion(["bug", "bug"]) == " bug"
    assert parse_completion(format_completion(["question", "feature"], primary="question")) == ["question", "feature"]


@pytest.mark.parametrize("labels,primary", [(["bugs"], None), ([], None), (["bug"], "nope")])
def test_completion_rejects_bad_labels(labels, primary):
    with pytest.raises(ValueError):
        format_completion(labels, primary=primary)


def test_tokenizer_round_trip_and_single_token_labels(tmp_path, training_set):
    texts = (training_set["prompt"] + training_set["completion"]).tolist()
    tok = train_tokenizer(texts, vocab_size=600)
    assert len(tok) <= 600
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    sample = training_set["prompt"].iloc[0] + training_set["completion"].iloc[0]
    ids = tok(sample).input_ids
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == sample
    # Unseen text (non-ASCII included) still round-trips: byte-level BPE has no unknowns.
    odd = "Überraschung: 崩溃 when parsing 🙂"
    assert tok.decode(tok(odd).input_ids, skip_special_tokens=True) == odd
    for label in LABELS:
        assert len(tok(" " + label, add_special_tokens=False).input_ids) == 1, label

    tok.save_pretrained(str(tmp_path / "tok"))
    again = load_tokenizer(tmp_path / "tok")
    assert again(sample).input_ids == ids
    assert again.pad_token_id == 0 and again.eos_token_id == 2


def test_encode_masks_prompt_and_keeps_cue_when_truncating(training_set):
    tok = train_tokenizer(training_set["prompt"].tolist(), vocab_size=500)
    prompt = format_prompt("Title", "filler " * 400, "o/r")
    enc = encode_example(tok, prompt, " bug", seq_len=64)
    assert len(enc.input_ids) == 64
    assert enc.input_ids[0] == tok.bos_token_id
    n_target = sum(label != IGNORE_INDEX for label in enc.labels)
    assert n_target == 2  # " bug" + </s>
    assert enc.labels[-1] == tok.eos_token_id
    assert tok.decode(enc.input_ids[: -n_target]).endswith(LABELS_CUE)

    batch = collate([enc, encode_example(tok, "short", " docs", seq_len=64)], tok.pad_token_id)
    assert batch["input_ids"].shape == (2, 64)
    assert batch["attention_mask"][1].sum() < 64
    assert (batch["labels"][1][batch["attention_mask"][1] == 0] == IGNORE_INDEX).all()

    with pytest.raises(ValueError, match="does not fit"):
        encode_example(tok, prompt, " bug, feature, question, docs", seq_len=4)
