"""Read meshc's Mermaid flowcharts and DOT back into nodes and edges, for comparisons.

Deliberately independent of meshc.render: a renderer bug cannot hide behind a parser
that shares its code. Kinds: nodes are "agent" or "stream", edges "write" or "read".
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import networkx as nx

MERMAID_AGENT = re.compile(r'^\s*(\w+)\[\["([^"]*)"\]\]\s*$')
MERMAID_STREAM = re.compile(r'^\s*(\w+)\[\("([^"]*)"\)\]\s*$')
MERMAID_WRITE = re.compile(r"^\s*(\w+) --> (\w+)\s*$")
MERMAID_READ = re.compile(r'^\s*(\w+) -\.->(?:\|"[^"]*"\|)? (\w+)\s*$')

_Q = r'"((?:[^"\\]|\\.)*)"'
DOT_NODE = re.compile(rf"^\s*{_Q} \[(.*)\];$")
DOT_EDGE = re.compile(rf"^\s*{_Q} -> {_Q}( \[style=dashed[^\]]*\])?;$")


@dataclass(frozen=True)
class Parsed:
    nodes: dict[str, str]
    edges: set[tuple[str, str, str]]


def unescape_mermaid(text: str) -> str:
    """Mermaid entity codes (``#quot;``, ``#35;``) back to characters."""
    text = re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), text)
    return html.unescape(re.sub(r"#(\w+);", r"&\1;", text))


def parse_mermaid(source: str) -> Parsed:
    ids: dict[str, str] = {}
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()
    for line in source.splitlines():
        for pattern, kind in ((MERMAID_AGENT, "agent"), (MERMAID_STREAM, "stream")):
            m = pattern.match(line)
            if m:
                name = unescape_mermaid(m.group(2).split("<br/>")[0])
                assert m.group(1) not in ids, f"node id {m.group(1)} defined twice"
                ids[m.group(1)] = name
                nodes[name] = kind
        for pattern, kind in ((MERMAID_WRITE, "write"), (MERMAID_READ, "read")):
            m = pattern.match(line)
            if m:
                edges.add((ids[m.group(1)], ids[m.group(2)], kind))
    return Parsed(nodes, edges)


def _dot_unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_dot(source: str) -> Parsed:
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()
    for line in source.splitlines():
        m = DOT_EDGE.match(line)
        if m:
            kind = "read" if m.group(3) else "write"
            edges.add((_dot_unquote(m.group(1)), _dot_unquote(m.group(2)), kind))
            continue
        m = DOT_NODE.match(line)
        if m:
            kind = "stream" if "shape=cylinder" in m.group(2) else "agent"
            nodes[_dot_unquote(m.group(1))] = kind
    return Parsed(nodes, edges)


def from_graph(graph: nx.DiGraph) -> Parsed:
    """The same shape from ``meshc.graph.build``: what every diagram must show."""
    nodes = {n: str(graph.nodes[n]["kind"]) for n in graph.nodes}
    edges = {(u, v, "write" if nodes[u] == "agent" else "read") for u, v in graph.edges}
    return Parsed(nodes, edges)
