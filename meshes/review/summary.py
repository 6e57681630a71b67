"""The aggregator of the review mesh: one summary per chunk from the four lens results.

The runtime has already joined the partial results on (doc_id, chunk_id); this
handler only reshapes them. Lanes that missed the join timeout are listed in
``missing`` and left out of ``lenses``, so a caller can tell "no findings" from
"not reviewed".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from meshc.runtime.context import Joined

from meshc.examples.review._common import Finding, Severity, finding, sort_findings


class Summary(TypedDict):
    """What the aggregator writes to ``doc.review.summary``."""

    doc_id: str
    chunk_id: int
    lenses: dict[str, list[Finding]]
    missing: list[str]


def summarize(joined: Joined, ctx: object) -> Summary:
    """Merge the lens results of one chunk: findings per lane, sorted; absent lanes named."""
    lenses = {lane: _findings(part) for lane, part in sorted(joined.parts.items())}
    return {
        "doc_id": str(_identity(joined, "doc_id")),
        "chunk_id": int(_identity(joined, "chunk_id")),
        "lenses": lenses,
        "missing": sorted(joined.missing),
    }


def _identity(joined: Joined, field: str) -> Any:
    """From the join key, or failing that from any part (they all carry it)."""
    if field in joined.key:
        return joined.key[field]
    for _, part in sorted(joined.parts.items()):
        return _get(part, field)
    raise ValueError(f"the join has no {field!r}: neither in its key nor in a part")


def _findings(part: Any) -> list[Finding]:
    return sort_findings(_finding(item) for item in _get(part, "findings") or ())


def _finding(item: Any) -> Finding:
    span = (int(_get(item, "start")), int(_get(item, "end")))
    severity = cast(Severity, str(_get(item, "severity")))
    return finding(span, severity, str(_get(item, "message")), str(_get(item, "suggestion")))


def _get(item: Any, field: str) -> Any:
    """A field of a pydantic model, a plain object or a dict alike."""
    if isinstance(item, Mapping):
        return item[field]
    return getattr(item, field)
