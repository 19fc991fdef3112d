"""Logging for the model servers (KServe in server.py, MLServer in mlserver_app.py).

Both servers configure only their own loggers; ours log key ids and reloads, never keys or prompts.
"""

from __future__ import annotations

import logging


def configure_logging() -> None:
    ours = logging.getLogger("llama_platform")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
