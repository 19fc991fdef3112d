"""Language tag per issue (lingua), restricted to the languages the forges we read are written in.

Restricting lingua to a handful of languages makes it several times faster and more accurate on
short texts than all 75; anything else (or too little prose to tell) is tagged `und` (undetermined).
Code blocks are left out: code and stack traces are "English" to every detector.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

from llama_platform.data.text import split_fences

LANGUAGES = (
    Language.ENGLISH,
    Language.CHINESE,
    Language.JAPANESE,
    Language.KOREAN,
    Language.RUSSIAN,
    Language.GERMAN,
    Language.FRENCH,
    Language.SPANISH,
    Language.PORTUGUESE,
)
UNDETERMINED = "und"
LANG_CODES = tuple(sorted(lang.iso_code_639_1.name.lower() for lang in LANGUAGES)) + (UNDETERMINED,)
MAX_CHARS = 1_000  # the opening prose decides; more text costs time and rarely changes the answer
_MIN_LETTERS = 12
# A text with a good share of Han characters and no kana or hangul is Chinese; skip the detector.
_HAN = re.compile(r"[\u4e00-\u9fff]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\uac00-\ud7af]")
_INLINE_CODE = re.compile(r"`[^`\n]*`|https?://\S+")
# Fast path: lingua costs ~0.3 ms per issue, most issues are plain English, and English prose is
# dense in these function words (none of them a word in the other Latin-script languages above).
_ENGLISH_WORDS = frozenset(
    "the and is are was were with this that when what which it of to have has not but for from be can "
    "should would could an after does doesn't don't i'm it's there their they you your we".split()
)
_WORD = re.compile(r"[A-Za-z']+")
# Letters of the other scripts and accented Latin: their presence sends a text to lingua.
_NON_ENGLISH_LETTER = re.compile(r"[\u00c0-\u024f\u0400-\u04ff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_ENGLISH_SHARE = 0.2
# Prose mixed with unfenced code or logs has a low share but many distinct function words; "was"
# and "an" are left out of this count because they are German words too.
_ENGLISH_DISTINCT = 6
_ENGLISH_ONLY_WORDS = _ENGLISH_WORDS - {"was", "an"}


@lru_cache(maxsize=1)
def _detector() -> LanguageDetector:
    # Loaded up front, so a process pool forked after the first call shares them (see cleaning).
    return LanguageDetectorBuilder.from_languages(*LANGUAGES).with_preloaded_language_models().build()


def prose_sample(text: str, max_chars: int = MAX_CHARS) -> str:
    """The prose of a text (no fenced code, inline code or URLs), cut to `max_chars`."""
    prose = "".join(seg for is_code, seg in split_fences(text) if not is_code)
    return _INLINE_CODE.sub(" ", prose)[:max_chars]


def detect_language(text: str | None) -> str:
    """ISO 639-1 code of the text's language (`en`, `zh`, ...) or `und`."""
    sample = prose_sample(text or "")
    letters = sum(map(str.isalpha, sample))
    if letters < _MIN_LETTERS and not _HAN.search(sample):
        return UNDETERMINED
    han = len(_HAN.findall(sample))
    if han >= 4 and han * 4 >= letters and not _KANA_HANGUL.search(sample):
        return "zh"
    if not _NON_ENGLISH_LETTER.search(sample):
        words = _WORD.findall(sample.lower())
        if len(words) >= 8 and sum(map(_ENGLISH_WORDS.__contains__, words)) >= _ENGLISH_SHARE * len(words):
            return "en"
        if len(_ENGLISH_ONLY_WORDS.intersection(words)) >= _ENGLISH_DISTINCT:
            return "en"
    lang = _detector().detect_language_of(sample)
    return lang.iso_code_639_1.name.lower() if lang is not None else UNDETERMINED
