"""``meshc demo``: the review mesh over the sample documents, end to end.

It runs exactly what a user would: the example mesh ``meshes/doc_review.yaml`` is
compiled into this folder's cache, its agents run as supervised worker processes,
the documents are cut into chunks and submitted through the intake stream, and the
summaries are read back from the terminal stream. Nothing is faked, so a demo that
works says the whole chain works on this machine.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.resources import as_file, files
from typing import Any, cast

from meshc.codegen.build import Built, build_cached
from meshc.ops.client import MeshClient, RawEntry, Submitted
from meshc.runtime.keys import stream_keys
from meshc.runtime.process.launch import run_mesh
from meshc.runtime.spec import MeshSpec
from meshc.runtime.wire import id_order

MESH_FILE = "doc_review.yaml"
LLM_MESH_FILE = "doc_review_llm.yaml"
SUMMARY_STREAM = "doc.review.summary"
MAX_CHARS = 2000
POLL = 0.25
# Workers log every start and stop at INFO; the demo's output is the report, so they
# run with WARNING (restarts and handler errors still show).
QUIET = {"MESHC_LOG_LEVEL": "WARNING"}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DemoResult:
    """The documents reviewed and the summaries that came back (one per chunk)."""

    documents: dict[str, str]
    chunks: int
    summaries: list[dict[str, Any]]
    seconds: float

    @property
    def complete(self) -> bool:
        return len(self.summaries) == self.chunks


def sample_documents(count: int | None = None) -> dict[str, str]:
    """The sample documents; ``count`` of them, reusing samples under new ids if needed."""
    from meshc.examples import load_samples

    samples: dict[str, str] = load_samples()
    if count is None:
        return samples
    names = list(samples)
    docs: dict[str, str] = {}
    for i in range(count):
        name = names[i % len(names)]
        copy = i // len(names)
        docs[name if copy == 0 else f"{name}-{copy + 1}"] = samples[name]
    return docs


def review_mesh_file(llm: bool = False) -> str:
    """Where the packaged review mesh is, for messages (``meshc status <it>``)."""
    return str(files("meshc.examples").joinpath(LLM_MESH_FILE if llm else MESH_FILE))


def build_review_mesh(llm: bool = False) -> Built:
    """Compile the packaged review mesh (or its LLM version) into this folder's cache."""
    with as_file(files("meshc.examples").joinpath(LLM_MESH_FILE if llm else MESH_FILE)) as path:
        return build_cached(str(path))


def review(
    built: Built,
    url: str,
    documents: dict[str, str],
    *,
    timeout: float = 60.0,
    progress: Progress | None = None,
    extra_env: dict[str, str] | None = None,
) -> DemoResult:
    """Run the mesh's workers, submit every chunk, and collect every summary.

    Each chunk is a task of its own (its own trace), so a second demo on the same
    server is joined afresh; ``extra_env`` reaches the workers (the LLM settings).
    """
    spec = built.load_spec()
    tasks = review_tasks(documents)
    began = time.monotonic()
    with MeshClient(spec, url) as client, running_workers(spec, built, url, extra_env):
        since = _last_id(client)
        submitted = client.submit_many(tasks)
        summaries = collect(client, submitted, since, timeout, progress)
    return DemoResult(documents, len(tasks), summaries, time.monotonic() - began)


def review_tasks(documents: dict[str, str]) -> list[dict[str, Any]]:
    """The chunks of every document as review tasks."""
    from meshc.examples.review import split_document

    return [
        dict(task)
        for doc_id, text in documents.items()
        for task in split_document(doc_id, text, MAX_CHARS)
    ]


def collect(
    client: MeshClient,
    submitted: list[Submitted],
    since: str,
    timeout: float,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """The summaries of ``submitted``, in submission order, as they arrive.

    Short waits in a loop rather than one long one, so that progress can be reported.
    """
    wanted = {s.trace for s in submitted}
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while wanted and time.monotonic() < deadline:
        window = min(POLL, max(0.0, deadline - time.monotonic()))
        results = client.wait_many(wanted, stream=SUMMARY_STREAM, timeout=window, since=since)
        for trace, result in results.items():
            found[trace] = result.data
        wanted -= set(results)
        if progress is not None:
            progress(len(found), len(submitted))
    return [found[s.trace] for s in submitted if s.trace in found]


@contextlib.contextmanager
def running_workers(
    spec: MeshSpec, built: Built, url: str, extra_env: dict[str, str] | None = None
) -> Iterator[None]:
    """Every agent's replicas as supervised processes for the body of the block.

    ``meshc run``'s ``launch.run_mesh`` on a thread that the block stops; the workers
    log warnings only. The supervisor reports restarts itself (logging, WARNING).
    """
    stop = threading.Event()
    env = {**built.worker_env(), **QUIET, **(extra_env or {})}
    thread = threading.Thread(
        target=run_mesh,
        args=(spec, built.package, url),
        kwargs={"extra_env": env, "stop": stop, "record": False},
        name="meshc-demo-supervisor",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _last_id(client: MeshClient) -> str:
    """Where the summary stream ends now: the summaries of an earlier demo are not ours."""
    ends = [
        entry[0].decode()
        for key in stream_keys(client.mesh, SUMMARY_STREAM)
        for entry in cast(list[RawEntry], client.redis.xrevrange(key, count=1))
    ]
    return max(ends, key=id_order, default="0")
