"""The multi-lens document review mesh (``meshes/doc_review.yaml``).

One handler module per agent, so that no agent imports another's code:
``grammar``, ``clarity``, ``tone`` and ``structure`` are the specialists (each module
has a function of the same name), ``summary.summarize`` is the aggregator. Around them,
``chunking.split_document`` cuts a document into review tasks and
``report.format_report`` prints the summaries for people.
"""

from __future__ import annotations

from meshc.examples.review.chunking import chunk_spans, split_document
from meshc.examples.review.report import format_report

__all__ = ["chunk_spans", "format_report", "split_document"]
