"""``meshc serve``: an HTTP gateway in front of a mesh's intake and terminal streams.

A caller in any language submits a task with ``POST /tasks/{intake}``, reads its
result with ``GET /tasks/{trace}`` (long-polling with ``?wait=``), follows its hops as
server-sent events, or has the result pushed to a signed webhook. The gateway is an
outside client of the mesh like ``meshc submit``: it writes the intake through
:class:`meshc.ops.client.MeshClient` and reads the terminal streams, so nothing in
the workers knows it exists. It lives outside ``meshc.runtime`` because generated
workers never need it, and its dependencies (Starlette, uvicorn, httpx) are the
optional extra ``meshc[serve]``. See docs/gateway.md.
"""

from __future__ import annotations
