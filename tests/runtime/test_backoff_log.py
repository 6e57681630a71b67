"""A server away for a long time is one warning per waiting loop, not one per retry."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from meshc.runtime.transport import Backoff


def _run(backoff: Backoff, failures: int) -> None:
    async def fail() -> None:
        for _ in range(failures):
            await backoff.pause("server unavailable", ConnectionError("refused"))

    asyncio.run(fail())


def test_an_outage_warns_once_and_says_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    backoff = Backoff(logging.getLogger("meshc.worker.t"), first=0.001, cap=0.002)
    with caplog.at_level(logging.DEBUG, logger="meshc.worker.t"):
        _run(backoff, 8)
        backoff.reset()
        _run(backoff, 3)  # a second outage: warned about again
    levels = [(r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records]
    assert levels.count(("WARNING", "server unavailable")) == 2
    back = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert len(back) == 1 and re.fullmatch(
        r"the server answers again after \d+\.\d s \(8 attempts failed\)", back[0]
    ), back
    assert sum(r.levelname == "DEBUG" for r in caplog.records) == 9


def test_one_failed_attempt_is_no_outage(caplog: pytest.LogCaptureFixture) -> None:
    """A pooled connection the server closed fails once; the next attempt works."""
    backoff = Backoff(logging.getLogger("meshc.worker.t"), first=0.001)
    with caplog.at_level(logging.INFO, logger="meshc.worker.t"):
        _run(backoff, 1)
        backoff.reset()
    assert caplog.records == []
    assert backoff.delay == backoff.first
