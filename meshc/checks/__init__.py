"""Every check of a mesh, run in one pass; all problems come back at once, sorted."""

from __future__ import annotations

from meshc.checks.structure import (
    check_cycles,
    check_names,
    check_reachability,
    check_references,
    check_roles,
    check_writers,
)
from meshc.checks.types import check_joins, check_partition_key, check_types
from meshc.core import CoreMesh
from meshc.diagnostics import Diagnostic
from meshc.graph import index
from meshc.source import Source


def run_checks(core: CoreMesh, source: Source) -> list[Diagnostic]:
    idx = index(core)
    diags: list[Diagnostic] = []
    diags.extend(check_names(core, source))
    diags.extend(check_references(core, source, idx))
    diags.extend(check_writers(core, source, idx))
    diags.extend(check_roles(core, source))
    diags.extend(check_cycles(core, source, idx))
    diags.extend(check_reachability(core, source, idx))
    diags.extend(check_types(core, source))
    diags.extend(check_joins(core, source, idx))
    diags.extend(check_partition_key(core, source))
    return diags
