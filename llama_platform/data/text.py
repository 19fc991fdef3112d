"""Text cleaning helpers for issue titles, bodies and comments.

Prose is cleaned (auto-generated text removed, whitespace normalised); fenced code blocks are kept
byte-for-byte, because indentation and blank lines in code and logs carry meaning.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

TRUNCATION_MARKER = "\n[… {n} characters truncated …]\n"

# A fence opens with ``` or ~~~ (3+), indented at most 3 spaces; it closes with the same character,
# at least as many, and nothing else on the line (CommonMark). An unclosed fence runs to the end.
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# GitHub/Gitee notification e-mail footers: everything from the marker on is boilerplate.
_FOOTER_START = re.compile(
    r"^\s*(?:—|--|-)?\s*(?:Reply to this email directly|You are receiving this because|"
    r"You received this message because)",
    re.IGNORECASE,
)
_FOOTER_LINE = re.compile(
    r"notifications@github\.com|noreply@gitee\.com|^\s*Message ID:\s*<.*>\s*$|"
    r"^\s*On .{1,200} wrote:\s*$",
    re.IGNORECASE,
)
_SIGNOFF = re.compile(r"^\s*Signed-off-by:", re.IGNORECASE)
# Gates: a literal every match of the line patterns above contains (same flags), so a text without
# one is returned unchanged without a per-line pass.
_FOOTER_GATE = re.compile(
    r"Reply to this email directly|You are receiving this because|You received this message because|"
    r"notifications@github\.com|noreply@gitee\.com|Message ID:|wrote:",
    re.IGNORECASE,
)
_SIGNOFF_GATE = re.compile(r"Signed-off-by:", re.IGNORECASE)
_FOOTER_WORDS = (
    "reply to this email directly", "you are receiving this because", "you received this message because",
    "notifications@github.com", "noreply@gitee.com", "message id:", "wrote:",
)  # fmt: skip
_QUOTED = re.compile(r"^\s{0,3}>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
# Markdown: inline code spans are code (kept as is); images become their alt text; HTML tags that
# only lay out the rendered page (<details>, <br>, <p>, ...) are dropped; setext headings and
# `*`/`+` bullets take their ATX/`-` forms so the same structure always reads the same.
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_IMG_TAG = re.compile(r"<img\b[^>]*?(?:\balt=\"([^\"]*)\"[^>]*)?/?>", re.IGNORECASE)
_HTML_TAG = re.compile(
    r"</?(?:details|summary|br|p|div|span|sub|sup|kbd|b|i|em|strong|center|hr|h[1-6]|ul|ol|li|table|thead|tbody|tr|td|th|a|picture|source)\b[^>]*/?>",
    re.IGNORECASE,
)
# The text line is "leading blanks, then a non-space, then anything": the same lines as
# `[^\n]*\S[^\n]*`, without its quadratic backtracking on every line.
_SETEXT = re.compile(r"^(?P<text>[^\S\n]*\S[^\n]*)\n(?P<rule>=+|-+)[ \t]*$", re.MULTILINE)
_BULLET = re.compile(r"^(?P<indent>[ \t]*)[*+][ \t]+", re.MULTILINE)


def _may_have_footer(text: str) -> bool:
    # Substring tests on the lower-cased text are ~10x faster than the case-insensitive regex; only
    # ASCII text takes the shortcut (re's Unicode case folding also maps e.g. "K" (Kelvin) to "k").
    if text.isascii():
        lower = text.lower()
        return any(word in lower for word in _FOOTER_WORDS)
    return _FOOTER_GATE.search(text) is not None


def split_fences(text: str) -> list[tuple[bool, str]]:
    """Split text into (is_code, segment) pieces; code segments include their fence lines."""
    if "```" not in text and "~~~" not in text:  # no fence can open: skip the per-line scan
        return [(False, text)] if text else []
    return list(_split_fenced(text))


@lru_cache(maxsize=32)
def _split_fenced(text: str) -> tuple[tuple[bool, str], ...]:
    # Cached: clean_text's passes split the same text several times when a pass changes nothing.
    segments: list[tuple[bool, str]] = []
    prose: list[str] = []
    code: list[str] = []
    fence = ""
    for line in text.splitlines(keepends=True):
        if fence:
            code.append(line)
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                segments.append((True, "".join(code)))
                code, fence = [], ""
            continue
        m = _FENCE_OPEN.match(line)
        if m:
            if prose:
                segments.append((False, "".join(prose)))
                prose = []
            fence = m.group(1)
            code = [line]
        else:
            prose.append(line)
    if code:
        segments.append((True, "".join(code)))
    if prose:
        segments.append((False, "".join(prose)))
    return tuple(segments)


def _map_prose(text: str, fn) -> str:
    return "".join(seg if is_code else fn(seg) for is_code, seg in split_fences(text))


def strip_html_comments(text: str) -> str:
    """Remove issue-template HTML comments (`<!-- ... -->`) that start outside code blocks.

    Templates often put example code fences inside a comment, so a comment may span fences;
    an unclosed comment hides the rest of the text when rendered, so it is dropped likewise.
    """
    if "<!--" not in text:
        return text
    out: list[str] = []
    in_comment = False
    for is_code, seg in split_fences(text):
        if in_comment:
            end = -1 if is_code else seg.find("-->")
            if end < 0:
                continue
            seg, in_comment = seg[end + 3 :], False
        if is_code:
            out.append(seg)
            continue
        seg = _HTML_COMMENT.sub("", seg)
        start = seg.find("<!--")
        if start >= 0:
            seg, in_comment = seg[:start], True
        out.append(seg)
    return "".join(out)


def strip_reply_footer(text: str) -> str:
    """Remove notification-email footers, `On ... wrote:` lines and lines naming the notification address."""
    if not _may_have_footer(text):
        return text
    out: list[str] = []
    for is_code, seg in split_fences(text):
        if is_code:
            out.append(seg)
            continue
        kept = []
        footer_found = False
        for line in seg.splitlines(keepends=True):
            if _FOOTER_START.search(line):
                footer_found = True
                break
            if not _FOOTER_LINE.search(line):
                kept.append(line)
        if footer_found:
            # Drop the "—" separator that precedes the footer too.
            while kept and kept[-1].strip() in ("", "—", "--", "-", "___"):
                kept.pop()
            out.append("".join(kept))
            break  # everything after the footer is e-mail boilerplate
        out.append("".join(kept))
    return "".join(out)


def strip_signoff(text: str) -> str:
    """Remove `Signed-off-by:` trailer lines outside code blocks."""
    if not _SIGNOFF_GATE.search(text):
        return text
    return _map_prose(
        text, lambda s: "".join(line for line in s.splitlines(keepends=True) if not _SIGNOFF.match(line))
    )


def strip_quoted(text: str) -> str:
    """Remove `>` quoted reply blocks outside code blocks (they repeat earlier messages)."""
    if ">" not in text:
        return text
    return _map_prose(
        text, lambda s: "".join(line for line in s.splitlines(keepends=True) if not _QUOTED.match(line))
    )


def _normalise_prose(seg: str) -> str:
    # Leading indentation stays (nested lists, indented code); inner runs of spaces collapse.
    # Without a tab, a double space or a wide blank, collapsing runs changes nothing: skip the regex.
    collapse = "  " in seg or "\t" in seg or "\u00a0" in seg or "\u3000" in seg
    lines = []
    for line in seg.split("\n"):
        body = line.lstrip(" \t")
        indent = line[: len(line) - len(body)]
        lines.append(indent + (_SPACES.sub(" ", body) if collapse else body).rstrip() if body.strip() else "")
    out = "\n".join(lines)
    return _BLANK_RUNS.sub("\n\n", out) if "\n\n\n" in out else out


def normalise_whitespace(text: str) -> str:
    """Unify line endings, drop control characters, collapse spaces and blank runs in prose.

    Code blocks keep their exact indentation and spacing (only line endings and control
    characters are normalised there).
    """
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    out = "".join(seg if is_code else _normalise_prose(seg) for is_code, seg in split_fences(text))
    return out.strip("\n").rstrip()


def truncate(text: str, max_chars: int, head_fraction: float = 0.7) -> str:
    """Keep the head and the tail of an over-long text with a marker saying how much was cut.

    The head holds the description, the tail often the final error or resolution, so both matter.
    """
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    if len(text) <= max_chars:
        return text
    budget = max_chars - len(TRUNCATION_MARKER.format(n=len(text)))
    if budget < 2:  # no room for the marker: a plain cut
        return text[:max_chars]
    head = int(budget * head_fraction)
    tail = budget - head
    cut = len(text) - head - tail
    return text[:head] + TRUNCATION_MARKER.format(n=cut) + (text[-tail:] if tail else "")


def _markdown_prose(seg: str) -> str:
    # Each substitution is skipped when the character every match needs is absent (most prose).
    def outside_inline_code(part: str) -> str:
        if "![" in part:
            part = _IMAGE.sub(lambda m: f"[image: {m.group(1)}]" if m.group(1).strip() else "[image]", part)
        if "<" in part:
            part = _IMG_TAG.sub(lambda m: f"[image: {m.group(1)}]" if (m.group(1) or "").strip() else "[image]", part)
            part = _HTML_TAG.sub("", part)
        return html.unescape(part)

    if "`" not in seg:
        out = outside_inline_code(seg)
    else:
        pieces, pos = [], 0
        for m in _INLINE_CODE.finditer(seg):
            pieces.append(outside_inline_code(seg[pos : m.start()]))
            pieces.append(m.group(0))
            pos = m.end()
        pieces.append(outside_inline_code(seg[pos:]))
        out = "".join(pieces)
    if "\n=" in out or "\n-" in out:  # a setext rule line starts with = or -
        out = _SETEXT.sub(lambda m: ("# " if m.group("rule")[0] == "=" else "## ") + m.group("text").strip(), out)
    return _BULLET.sub(lambda m: m.group("indent") + "- ", out) if ("*" in out or "+" in out) else out


def close_fences(text: str) -> str:
    """Close a code block left open at the end (a paste cut short), so it stays fenced downstream."""
    segments = split_fences(text)
    if not segments or not segments[-1][0]:
        return text
    opening = segments[-1][1].split("\n", 1)[0].strip()
    fence = re.match(r"`{3,}|~{3,}", opening)
    last_lines = segments[-1][1].rstrip("\n").split("\n")
    closed = len(last_lines) > 1 and fence and last_lines[-1].strip().startswith(fence.group()) and set(
        last_lines[-1].strip()
    ) == {fence.group()[0]}
    if closed or not fence:
        return text
    return text.rstrip("\n") + "\n" + fence.group() + "\n"


def normalise_markdown(text: str) -> str:
    """Normalise Markdown prose (images, layout HTML, headings, bullets); code blocks stay fenced, byte for byte."""
    text = close_fences(text)
    return "".join(seg if is_code else _markdown_prose(seg) for is_code, seg in split_fences(text))


def clean_text(text: str | None) -> str:
    """All prose cleaning in order: template comments, e-mail footers, sign-offs, quotes, Markdown, whitespace."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = strip_html_comments(text)
    text = strip_reply_footer(text)
    text = strip_signoff(text)
    text = strip_quoted(text)
    text = normalise_markdown(text)
    return normalise_whitespace(text)
