"""The chaos tests drive ``bench.chaos`` (the harness behind ``python -m bench.chaos``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `bench` and `meshes`, also under a plain `pytest`
    sys.path.insert(0, str(ROOT))
