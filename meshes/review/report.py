"""Turn review summaries into a plain-text report that a person reads top to bottom.

Summaries speak in chunk offsets; people think in lines and columns of the document.
The report recomputes the chunking from the document (it is deterministic) to place
each finding, so the summaries need not carry positions of their own.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshc.examples.review.chunking import chunk_spans

LENS_ORDER = ("grammar", "clarity", "tone", "structure")
SEVERITIES = ("error", "warning", "info")
SNIPPET_CHARS = 60
_ANSI = {"error": "31", "warning": "33", "info": "36", "title": "1", "fix": "32", "dim": "2"}


@dataclass(frozen=True)
class _Item:
    lens: str
    chunk_id: int
    start: int  # in the document, or in the chunk when the document is unknown
    end: int
    severity: str
    message: str
    suggestion: str


@dataclass(frozen=True)
class _Doc:
    doc_id: str
    text: str | None
    items: list[_Item]
    chunks: int
    expected: int
    missing: dict[str, list[int]]


class _Style:
    """ANSI colours when asked for, nothing otherwise."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, what: str, text: str) -> str:
        return f"\x1b[{_ANSI[what]}m{text}\x1b[0m" if self.color and what in _ANSI else text


def format_report(
    summaries: Iterable[Mapping[str, Any]],
    documents: Mapping[str, str],
    *,
    max_chars: int = 2000,
    color: bool = False,
) -> str:
    """A report per document (per-lens counts, then each finding) and totals at the end.

    ``max_chars`` must be the value the documents were split with, so that chunk
    offsets map back to the right lines. A summary of a document that is not in
    ``documents`` is still shown, with chunk offsets instead of line:col.
    """
    style = _Style(color)
    grouped = _group(summaries)
    docs = [
        _collect(doc_id, documents.get(doc_id), grouped.get(doc_id, {}), max_chars)
        for doc_id in sorted(set(grouped) | set(documents))
    ]
    blocks = [_document_block(doc, style) for doc in docs]
    return "\n\n".join([*blocks, _totals(docs, style)]) + "\n"


def _group(summaries: Iterable[Mapping[str, Any]]) -> dict[str, dict[int, Mapping[str, Any]]]:
    """Summaries by document and chunk; a duplicate (redelivered) summary is ignored."""
    grouped: dict[str, dict[int, Mapping[str, Any]]] = {}
    for summary in summaries:
        chunks = grouped.setdefault(str(summary["doc_id"]), {})
        chunks.setdefault(int(summary["chunk_id"]), summary)
    return grouped


def _collect(
    doc_id: str, text: str | None, chunks: Mapping[int, Mapping[str, Any]], max_chars: int
) -> _Doc:
    spans = chunk_spans(text, max_chars) if text is not None else []
    items: list[_Item] = []
    missing: dict[str, list[int]] = {}
    for chunk_id, summary in sorted(chunks.items()):
        base = spans[chunk_id][0] if chunk_id < len(spans) else 0
        for lens, findings in summary.get("lenses", {}).items():
            items.extend(_item(lens, chunk_id, base, f) for f in findings)
        for lens in summary.get("missing", ()):
            missing.setdefault(lens, []).append(chunk_id)
    items.sort(key=lambda i: (_lens_rank(i.lens), i.start, i.end, i.message))
    expected = len(spans) if text is not None else len(chunks)
    return _Doc(doc_id, text, items, len(chunks), expected, missing)


def _item(lens: str, chunk_id: int, base: int, f: Any) -> _Item:
    def get(name: str) -> Any:
        return f[name] if isinstance(f, Mapping) else getattr(f, name)

    start, end = base + int(get("start")), base + int(get("end"))
    texts = (str(get(name)) for name in ("severity", "message", "suggestion"))
    return _Item(lens, chunk_id, start, end, *texts)


def _lens_rank(lens: str) -> tuple[int, str]:
    return (LENS_ORDER.index(lens) if lens in LENS_ORDER else len(LENS_ORDER), lens)


def _document_block(doc: _Doc, style: _Style) -> str:
    lines = [style("title", doc.doc_id), style("title", "=" * len(doc.doc_id))]
    lines.append(f"{_chunk_line(doc)} · {_count_line(doc.items)}")
    lines.append(_lens_line(doc.items))
    if doc.missing:
        lost = "; ".join(f"{lens} (chunk {_ids(ids)})" for lens, ids in sorted(doc.missing.items()))
        lines.append(style("warning", f"not reviewed: {lost}"))
    starts = _line_starts(doc.text) if doc.text is not None else []
    for lens in sorted({i.lens for i in doc.items}, key=_lens_rank):
        mine = [i for i in doc.items if i.lens == lens]
        lines.extend(["", style("title", f"{lens} ({len(mine)})")])
        lines.extend(line for i in mine for line in _finding_lines(i, doc.text, starts, style))
    return "\n".join(lines)


def _chunk_line(doc: _Doc) -> str:
    if doc.chunks == doc.expected:
        return f"{doc.chunks} chunk{'s' * (doc.chunks != 1)} reviewed"
    return f"{doc.chunks} of {doc.expected} chunks reviewed"


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids))


def _count_line(items: list[_Item]) -> str:
    if not items:
        return "no findings"
    counts = Counter(i.severity for i in items)
    parts = [_plural(counts[s], s) for s in SEVERITIES]
    return f"{_plural(len(items), 'finding')}: {', '.join(parts)}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 or word == "info" else f"{count} {word}s"


def _lens_line(items: list[_Item]) -> str:
    counts = Counter(i.lens for i in items)
    lenses = sorted(set(LENS_ORDER) | set(counts), key=_lens_rank)
    return " · ".join(f"{lens} {counts[lens]}" for lens in lenses)


def _line_starts(text: str) -> list[int]:
    return [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]


def _finding_lines(item: _Item, text: str | None, starts: list[int], style: _Style) -> list[str]:
    if text is None:
        where, snippet = f"chunk {item.chunk_id} @{item.start}", ""
    else:
        line = bisect_right(starts, item.start)
        where = f"{line}:{item.start - starts[line - 1] + 1}"
        snippet = f"“{_snippet(text[item.start : item.end])}”"
    head = f"  {where:<8} {style(item.severity, f'{item.severity:<8}')} {snippet}".rstrip()
    pad = " " * 11
    return [head, f"{pad}{item.message}", f"{pad}{style('fix', '→ ' + item.suggestion)}"]


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def _totals(docs: list[_Doc], style: _Style) -> str:
    items = [i for doc in docs for i in doc.items]
    chunks = sum(doc.chunks for doc in docs)
    head = f"Total: {_plural(len(docs), 'document')} · {_plural(chunks, 'chunk')}"
    return "\n".join(
        [
            style("dim", "─" * 72),
            style("title", f"{head} · {_count_line(items)}"),
            _lens_line(items),
        ]
    )
