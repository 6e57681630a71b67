"""Operator tools that talk to a live mesh: reading what happened, not running agents.

Kept apart from ``meshc.runtime`` on purpose: generated workers import the runtime,
and nothing a worker needs lives here. These modules take a server client and a
:class:`~meshc.runtime.spec.MeshSpec` and return plain records, so a command prints
them and another program (an HTTP gateway, a dashboard) can serve them.

- :mod:`meshc.ops.live`: a mesh's lengths, lag, pending and dead letters as
  ``meshc render --live`` draws them (read with ``meshc status``'s reads).
- :mod:`meshc.ops.trace`: the path of one task through the streams (``meshc trace``).
- :mod:`meshc.ops.trace_view`: that path as a tree, JSON or a Mermaid sequence diagram.
"""
