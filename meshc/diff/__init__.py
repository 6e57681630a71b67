"""``meshc diff``: what changes between two versions of a mesh, and what each change
does to a mesh running the old one.

The comparison is made on the analysed core meshes (lane families expanded, policy
filled in from the defaults), never on YAML text, so moving a key or a comment is
not a change and a default that changes every agent's policy is. Each change is a
:class:`~meshc.diff.findings.Finding` classified safe, restart or breaks (see
:mod:`meshc.diff.findings`); :mod:`meshc.ops.diff_facts` sharpens the classification
with what a server holds. docs/operations.md shows the command; docs/compatibility.md
holds the rules for message types.
"""

from __future__ import annotations

from meshc.core import CoreMesh
from meshc.diff.agents import agent_findings
from meshc.diff.findings import Finding, Report, Side
from meshc.diff.streams import family_findings, mesh_findings, stream_findings, summarize_families
from meshc.diff.types import type_findings

__all__ = ["Finding", "Report", "Side", "diff_meshes", "finish"]


def diff_meshes(old: CoreMesh, new: CoreMesh, old_file: str = "", new_file: str = "") -> Report:
    """Every finding between ``old`` and ``new``, unsettled (no server read yet)."""
    findings = [
        *mesh_findings(old, new),
        *family_findings(old, new),
        *stream_findings(old, new),
        *type_findings(old, new),
        *agent_findings(old, new),
    ]
    report = Report(Side(old_file, old.name, old.version), Side(new_file, new.name, new.version))
    report.findings = sorted(findings, key=Finding.sort_key)
    return finish(report, old, new)


def finish(report: Report, old: CoreMesh, new: CoreMesh) -> Report:
    """Give lane-family findings the level of their members (again after settling)."""
    report.findings = summarize_families(report.findings, old, new)
    return report
