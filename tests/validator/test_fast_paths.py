"""The checks' fast paths find exactly what their plain definitions find.

- MESH204: ``_joined_by`` walks every lane to its end, counting open fan-outs; on an
  acyclic mesh ``joins_of`` uses ``_joined_in_dag`` instead, which skips each
  downstream fan-out by jumping to the aggregators that close it. Random DAGs with
  random roles (nested fan-outs, lanes that escape, aggregators met at any level)
  hold the fast walk to the plain one.
- MESH108: ``_outside`` scans all names with one regular expression; it must agree
  with matching each name on its own, line breaks and all.
"""

from __future__ import annotations

import re

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meshc.checks.structure import AGENT_NAMES, STREAM_NAMES, _outside
from meshc.checks.types import _joined_by, joins_of

AGENT_ROLES = ["specialist", "coordinator", "aggregator"]


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str | None], list[list[int]]]:
    """A mesh's graph: agents (with a role) and streams (None), edges only between the
    two kinds and only forward, so the numbering is a topological order."""
    n = draw(st.integers(2, 24))
    roles = [draw(st.sampled_from([None, *AGENT_ROLES])) for _ in range(n)]
    succ: list[list[int]] = [[] for _ in range(n)]
    for u in range(n):
        later = [v for v in range(u + 1, n) if (roles[u] is None) != (roles[v] is None)]
        if later:
            succ[u] = sorted(set(draw(st.lists(st.sampled_from(later), max_size=4))))
    return roles, succ


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(dags())
def test_fast_walk_finds_what_the_plain_walk_finds(
    dag: tuple[list[str | None], list[list[int]]],
) -> None:
    roles, succ = dag
    lanes_of = {u: succ[u] for u in range(len(roles)) if roles[u] == "coordinator"}
    graph = nx.DiGraph((u, v) for u, vs in enumerate(succ) for v in vs)
    graph.add_nodes_from(range(len(roles)))
    order = list(nx.topological_sort(graph))
    fast = joins_of(roles, succ, lanes_of, order)
    plain = {c: _joined_by(roles, succ, lanes, len(lanes_of)) for c, lanes in lanes_of.items()}
    assert fast == plain
    assert joins_of(roles, succ, lanes_of, None) == plain


def test_nested_fan_outs_are_skipped_to_their_aggregator() -> None:
    # Coordinator 0 fans out to streams 1, 2, read by coordinators 3 and 4, which fan
    # out to 5/6 and 7/8, joined by aggregators 9 and 10; they write 11 and 12, which
    # aggregator 13 joins for 0.
    roles: list[str | None] = [None] * 14
    for node in (0, 3, 4):
        roles[node] = "coordinator"
    for node in (9, 10, 13):
        roles[node] = "aggregator"
    succ = [[1, 2], [3], [4], [5, 6], [7, 8], [9], [9], [10], [10], [11], [12], [13], [13], []]
    lanes_of = {0: [1, 2], 3: [5, 6], 4: [7, 8]}
    joins = joins_of(roles, succ, lanes_of, list(range(14)))
    assert joins == {
        0: {13: ({1, 2}, {11, 12})},
        3: {9: ({5, 6}, {5, 6})},
        4: {10: ({7, 8}, {7, 8})},
    }
    assert joins == joins_of(roles, succ, lanes_of, None)


anything = st.text(alphabet="az_09.-A\n\r é", max_size=6)


@settings(max_examples=500, deadline=None, database=None)
@given(st.sampled_from([STREAM_NAMES, AGENT_NAMES]), st.data())
def test_one_scan_finds_the_names_each_match_rejects(
    grammar: re.Pattern[str], data: st.DataObject
) -> None:
    good = st.from_regex(grammar, fullmatch=True).filter(lambda n: "\n" not in n)
    found = data.draw(st.lists(good | anything, max_size=8))  # often all good, or one not
    assert _outside(grammar, found) == {n for n in found if not grammar.fullmatch(n)}


def test_name_scan_edges() -> None:
    assert _outside(STREAM_NAMES, []) == set()
    assert _outside(STREAM_NAMES, ["a.b", "", "A", "a..b", "a.b\n"]) == {"", "A", "a..b", "a.b\n"}
    assert _outside(AGENT_NAMES, ["ok", "9no", "a-b", "_x"]) == {"9no", "a-b"}
