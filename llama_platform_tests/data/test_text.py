from llama_platform.data.text import (
    TRUNCATION_MARKER,
    clean_text,
    close_fences,
    normalise_markdown,
    normalise_whitespace,
    split_fences,
    strip_html_comments,
    strip_quoted,
    strip_reply_footer,
    strip_signoff,
    truncate,
)

CODE = "```python\ndef f():\n\n\n\n    return  1   # aligned\n> not a quote\n<!-- kept -->\n```\n"


def test_split_fences_finds_code_and_handles_unclosed_fence():
    segs = split_fences("intro\n" + CODE + "outro\n~~~\nopen to the end\n")
    assert [is_code for is_code, _ in segs] == [False, True, False, True]
    assert segs[1][1] == CODE
    assert segs[3][1].endswith("open to the end\n")
    assert split_fences("") == []


def test_html_comments_removed_outside_code_only():
    text = "<!-- Please describe -->Real text\n" + CODE
    assert strip_html_comments(text) == "Real text\n" + CODE
    # Template comments that contain example fences are removed as a whole.
    templ = "Before\n<!--\nExample:\n```\nlog\n```\n-->\nAfter\n"
    assert strip_html_comments(templ) == "Before\n\nAfter\n"
    assert strip_html_comments("no comment here") == "no comment here"


def test_reply_footer_and_notification_lines_removed():
    text = (
        "Thanks, that fixed it.\n\n"
        "On Tue, Mar 5, 2024 at 10:00 AM Bob <notifications@github.com> wrote:\n"
        "—\nReply to this email directly, view it on GitHub, or unsubscribe.\n"
        "You are receiving this because you authored the thread.\nMessage ID: <a/b/issues/1@github.com>\n"
    )
    assert strip_reply_footer(text).strip() == "Thanks, that fixed it."
    plain = "Reply to the thread, please.\nThis is fine."
    assert strip_reply_footer(plain) == plain


def test_signoff_and_quotes_removed_but_not_in_code():
    text = "Fix attached.\nSigned-off-by: Bob <bob@example.com>\n> earlier message\n>> older\n" + CODE
    out = strip_quoted(strip_signoff(text))
    assert "Signed-off-by" not in out and "earlier message" not in out and "older" not in out
    assert "> not a quote" in out  # inside the code block


def test_normalise_whitespace_keeps_code_intact():
    text = "Title   with\t tabs  \r\n\r\n\r\n\r\nNext\x00 line   \n" + CODE + "\n\n\n\nend  "
    out = normalise_whitespace(text)
    assert out.startswith("Title with tabs\n\nNext line\n")
    assert CODE in out  # blank lines, double spaces and alignment inside the fence survive
    assert out.endswith("\n\nend")
    assert "\x00" not in out and "\r" not in out


def test_normalise_whitespace_keeps_list_indentation():
    assert normalise_whitespace("- a\n    - b   c") == "- a\n    - b c"


def test_truncate_keeps_head_and_tail_with_marker():
    text = "HEAD" + "x" * 10_000 + "TAIL"
    out = truncate(text, 1000)
    assert len(out) <= 1000
    assert out.startswith("HEAD") and out.endswith("TAIL")
    assert "characters truncated" in out
    assert truncate("short", 1000) == "short"


def test_truncate_rejects_nonpositive_limit():
    import pytest

    with pytest.raises(ValueError):
        truncate("abc", 0)


def test_clean_text_end_to_end():
    body = (
        "<!-- Thanks for filing! Fill in the template. -->\n"
        "### Describe the bug\r\n\r\nIt   crashes.\n\n\n\n"
        "> quoted from an earlier email\n" + CODE + "Signed-off-by: A <a@b.c>\n"
        "—\nYou are receiving this because you were mentioned.\n"
    )
    out = clean_text(body)
    assert out == "### Describe the bug\n\nIt crashes.\n\n" + CODE.rstrip("\n")
    assert clean_text(None) == "" and clean_text("") == ""
    assert TRUNCATION_MARKER  # exported for consumers that want to detect truncation


def test_truncate_with_a_tiny_limit_still_respects_it():
    assert truncate("abcdefghijklmnopqrstuvwxyz" * 10, 5) == "abcde"


def test_markdown_is_normalised_outside_code():
    text = (
        "Title\n=====\n* one\n+ two\n<details><summary>Logs</summary>\n\n"
        "```\n<br> kept  * here\n* also kept\n```\n</details>\n"
        "Use `<div>` and ![shot](https://x/y.png) &amp; <img src=\"a.png\" alt=\"diagram\"> <img src=\"b.png\">\n"
    )
    out = normalise_markdown(text)
    assert out.startswith("# Title\n- one\n- two\nLogs\n")
    assert "```\n<br> kept  * here\n* also kept\n```\n" in out  # code byte for byte
    assert "`<div>`" in out and "[image: shot]" in out and "& [image: diagram] [image]" in out
    assert "<details>" not in out and "</details>" not in out


def test_markdown_normalisation_leaves_plain_prose_alone():
    plain = "Steps:\n- run `make`\n- see 3 * 4 = 12 and a < b > c\n\n| a | b |\n|---|---|\n"
    assert normalise_markdown(plain) == plain


def test_unclosed_fence_is_closed_so_code_stays_fenced():
    assert close_fences("text\n```python\nprint(1)\n") == "text\n```python\nprint(1)\n```\n"
    closed = "text\n~~~\ncode\n~~~\n"
    assert close_fences(closed) == closed
    assert clean_text("see:\n```\nx = 1") == "see:\n```\nx = 1\n```"
