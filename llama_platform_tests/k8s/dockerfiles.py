"""Reading Dockerfiles in tests: what their `pip install` lines pin."""

from __future__ import annotations

import re
import shlex

from dockerfile_parse import DockerfileParser
from packaging.utils import canonicalize_name


def installed_pins(parsed: DockerfileParser) -> dict[str, str]:
    """name -> version of every requirement the `pip install` / `uv pip install` lines name (options
    and paths aside); an unpinned requirement fails the calling test."""
    with_value = {"-c", "--constraint", "-r", "--requirement", "--index-url", "-i", "--extra-index-url"}
    pins: dict[str, str] = {}
    for item in parsed.structure:
        if item["instruction"] != "RUN" or "pip install" not in item["value"]:
            continue
        for command in item["value"].split("&&"):
            words = shlex.split(command)
            if "install" not in words:
                continue
            rest = iter(words[words.index("install") + 1:])
            for word in rest:
                if word in with_value:
                    next(rest)
                    continue
                if word.startswith(("-", "/", ".")):
                    continue
                name, sep, version = word.partition("==")
                assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.+]*", version), f"unpinned requirement {word!r}"
                pins[canonicalize_name(name)] = version
    return pins
