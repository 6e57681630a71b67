"""The handler of the poison mesh: a job whose id says "raise" or "crash" fails until a
fix is deployed, which here is a flag file (``POISON_FIXED``) the handler reads."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any


def _fixed() -> bool:
    flag = os.environ.get("POISON_FIXED")
    return flag is not None and Path(flag).exists()


def work(job: Any, ctx: Any) -> dict[str, Any]:
    if not _fixed():
        if job.id.startswith("raise"):
            raise ValueError(f"cannot handle job {job.id}")
        if job.id.startswith("crash"):
            os.kill(os.getpid(), signal.SIGKILL)  # takes its whole worker process down
    return {"id": job.id, "n": job.n * 2}
