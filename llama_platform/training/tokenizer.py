"""A small byte-level BPE tokenizer trained on the training split.

The model is random-init, so its vocabulary can be ours: a few thousand merges learned from the
issue texts keep sequences short and make every label word one token (checked by the trainer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from llama_platform.training.prompts import LABELS

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
# Order fixes the ids: pad=0, bos=1, eos=2, unk=3.
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts`; encoding adds <s> in front (not </s>: the trainer does)."""
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # The label words (as they appear after the cue: " bug") are fed in often enough that BPE
    # always merges them into single tokens, however small or skewed the corpus.
    label_hints = [" " + ", ".join(LABELS)] * 50
    tok.train_from_iterator(_chain(texts, label_hints), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="right",
    )


def _chain(*iterables: Iterable[str]) -> Iterable[str]:
    for it in iterables:
        for text in it:
            if not isinstance(text, str):
                raise TypeError(f"tokenizer training texts must be strings, got {type(text).__name__}")
            yield text


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: str | Path) -> None:
    tokenizer.save_pretrained(str(path))


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast.from_pretrained(str(path))
