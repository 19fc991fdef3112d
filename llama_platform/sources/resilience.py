"""Retries and rate limits shared by the connectors: bounded waits, each one reported.

A connector wraps one HTTP request in an attempt function that returns the response or raises
`Retry` (a transient failure: 5xx, connection reset, timeout, truncated JSON, a rate limit worth
waiting for). `RequestPolicy.call` retries it with tenacity: exponential backoff, or the wait the
forge asked for (`retry-after`, `x-ratelimit-reset`). A wait longer than `max_wait` is never slept:
the attempt raises `RateLimitExhausted` naming the reset time instead of sleeping for an hour.
Every wait goes through `on_wait(seconds, reason)` first, so the Dagster run log shows it.

Rate-limit rules follow GitHub's documentation (Gitee answers 403/429 the same way when it limits):
  * 403/429 with `retry-after`: a secondary limit; wait that many seconds.
  * 403/429 with `x-ratelimit-remaining: 0`: the primary limit; wait until `x-ratelimit-reset`.
  * 403/429 whose message says "secondary rate limit" but gives no time: wait at least 60 s.
  * A successful answer with `x-ratelimit-remaining: 0`: the next request would fail, so wait for
    the reset before sending it (or raise when that is too far).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Mapping, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from llama_platform.sources.forge import ForgeError, OnWait, RateLimitExhausted

log = logging.getLogger(__name__)
T = TypeVar("T")

SECONDARY_DEFAULT_WAIT = 60.0  # GitHub: "wait for at least one minute before retrying"
RESET_MARGIN = 1.0  # x-ratelimit-reset has 1 s resolution and clocks differ a little


class Retry(Exception):
    """Raised by an attempt: try again after `wait` seconds (None: exponential backoff).

    `error` is what the caller sees if no attempt is left.
    """

    def __init__(self, reason: str, error: ForgeError, wait: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.wait = wait


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _number(raw: str | None) -> float | None:
    try:
        return float(raw) if raw not in (None, "") else None
    except ValueError:
        return None


def is_secondary_message(message: str | None) -> bool:
    m = (message or "").lower()
    return "secondary rate limit" in m or m.endswith("please retry your request again later.")


@dataclass
class RequestPolicy:
    """How one connector retries and waits. `sleep` and `clock` are injectable for tests."""

    forge: str  # "GitHub" / "Gitee", for messages
    retries: int = 4
    backoff: float = 0.5
    backoff_max: float = 10.0
    max_wait: float = 60.0
    on_wait: OnWait | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    # When the last answer said the budget is spent: the epoch second it resets.
    _blocked_until: float | None = field(default=None, repr=False)

    # -- reporting --
    def report_wait(self, seconds: float, reason: str) -> None:
        if self.on_wait is not None:
            self.on_wait(seconds, reason)
        else:
            log.warning("%s: waiting %.1f s: %s", self.forge, seconds, reason)

    # -- rate limits --
    def _too_long(self, what: str, wait: float, status: int | None, where: str = "") -> RateLimitExhausted:
        reset_at = datetime.fromtimestamp(self.clock() + wait, tz=timezone.utc).replace(microsecond=0)
        return RateLimitExhausted(
            f"{self.forge} {what}{' on ' + where if where else ''}: requests may resume at {reset_at.isoformat().replace('+00:00', 'Z')} "
            f"(in {wait:.0f} s), longer than the {self.max_wait:.0f} s this connector waits; "
            "retry after that time (a fetch with a checkpoint resumes where it stopped)",
            status, reset_at, wait,
        )

    def _until_reset(self, headers: Mapping[str, str]) -> float | None:
        reset = _number(_header(headers, "x-ratelimit-reset"))
        return None if reset is None else max(reset - self.clock(), 0.0) + RESET_MARGIN

    def rate_limited(self, status: int, headers: Mapping[str, str], message: str | None, error: ForgeError,
                     where: str = "") -> Retry | None:
        """For a 403/429 answer: a `Retry` with the wait the forge asked for, or None if it is not a
        rate limit (a plain 403 is a permission error). Raises `RateLimitExhausted` if the wait is too long."""
        if status not in (403, 429):
            return None
        resource = _header(headers, "x-ratelimit-resource") or "core"
        retry_after = _number(_header(headers, "retry-after"))
        if retry_after is not None:
            what, wait = f"secondary rate limit ({resource}), retry-after {retry_after:.0f} s", retry_after
        elif _header(headers, "x-ratelimit-remaining") == "0":
            until = self._until_reset(headers)
            what, wait = f"rate limit ({resource}) exhausted", until if until is not None else SECONDARY_DEFAULT_WAIT
        elif status == 429 or is_secondary_message(message):
            what, wait = f"secondary rate limit ({resource}) without retry-after", SECONDARY_DEFAULT_WAIT
        else:
            return None
        if wait > self.max_wait:
            raise self._too_long(what, wait, status, where)
        return Retry(f"HTTP {status}: {what}", error, wait)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Remember a spent budget from a successful answer, so the next request waits for the reset."""
        if _header(headers, "x-ratelimit-remaining") == "0":
            reset = _number(_header(headers, "x-ratelimit-reset"))
            self._blocked_until = reset
        else:
            self._blocked_until = None

    def before_request(self) -> None:
        if self._blocked_until is None:
            return
        wait = self._blocked_until - self.clock() + RESET_MARGIN
        if wait > 0:
            if wait > self.max_wait:
                raise self._too_long("rate limit exhausted (x-ratelimit-remaining: 0)", wait, None)
            self.report_wait(wait, "rate limit exhausted (x-ratelimit-remaining: 0): waiting for the reset")
            self.sleep(wait)
        self._blocked_until = None

    # -- retries --
    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retry) and exc.wait is not None:
            return exc.wait
        return min(self.backoff * 2 ** (state.attempt_number - 1), self.backoff_max)

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        seconds = state.next_action.sleep if state.next_action else 0.0
        reason = exc.reason if isinstance(exc, Retry) else repr(exc)
        self.report_wait(seconds, f"{reason} (attempt {state.attempt_number} of {self.retries + 1})")

    def call(self, attempt: Callable[[], T]) -> T:
        """Run `attempt` until it returns, retrying on `Retry`; the last failure's `error` is raised."""

        def once() -> T:
            self.before_request()
            return attempt()

        retrying = Retrying(
            retry=retry_if_exception_type(Retry),
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            before_sleep=self._before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(once)
        except Retry as exc:
            raise exc.error from None
