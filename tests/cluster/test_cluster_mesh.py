"""The review mesh with 16 partitions on a three-primary cluster, end to end.

``meshc run`` starts every agent as a process with a cluster URL; ``meshc submit``,
``tail``, ``status`` and ``render --live`` talk to the same cluster. Every task is
summarised exactly once, no command is refused for crossing slots (worker logs and
every node's ``INFO errorstats``), and the partitions' streams live on all three
primaries. A mesh with one partition is refused at start-up with what to change.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest
from cluster_kit import (
    INTAKE,
    SUMMARY,
    crossslot_errors,
    meshc,
    meshc_run,
    review_mesh,
    summaries,
    task,
    wait_for,
)
from meshc.ops.client import MeshClient
from meshc.testing.cluster import LocalCluster

TASKS = 300


def test_review_mesh_with_16_partitions_runs_on_a_cluster(
    cluster: LocalCluster, workdir: Path
) -> None:
    mesh = review_mesh(workdir, 16)
    from meshc.codegen.build import build_cached

    spec = build_cached(str(mesh), workdir).load_spec()
    assert spec.partitions == 16
    with meshc_run(mesh, cluster.url, workdir) as run:
        wait_for(lambda: run.text().count("serving partitions") >= 6, what="six workers")
        started = time.monotonic()
        with MeshClient(spec, cluster.url) as client:
            sent = client.submit_many([task(i) for i in range(TASKS)])
            found = client.wait_many([s.trace for s in sent], timeout=90)
        elapsed = time.monotonic() - started
        assert len(found) == TASKS, f"{TASKS - len(found)} tasks got no summary"
        _check_cli(cluster, mesh, workdir)
    assert run.stop() == 0, run.text()[-3000:]

    counts = summaries(cluster.url)
    assert sorted(counts) == sorted([f"doc-{i}" for i in range(TASKS)] + ["doc-10000"])
    assert set(counts.values()) == {1}, "a task was summarised more than once"
    log = run.text()
    assert "CROSSSLOT" not in log and "same key slot" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert crossslot_errors(cluster.errorstats()) == 0

    by_node = cluster.keys_by_node("doc.*{doc_review:*}")
    assert len(by_node) == 3 and all(by_node.values()), by_node
    tags = {k[k.index("{") :] for node in by_node.values() for k in node}
    assert len(tags) == 16
    print(f"\n{TASKS} tasks through 6 agents on 3 primaries in {elapsed:.1f} s; keys per node:")
    for node, names in by_node.items():
        print(f"  {node}: {len({k[k.index('{') :] for k in names})} partitions, {len(names)} keys")


def _check_cli(cluster: LocalCluster, mesh: Path, workdir: Path) -> None:
    """``submit --cluster`` (plain URL plus the flag), ``tail``, ``status``, ``render --live``."""
    node = "redis://" + cluster.nodes[0].address
    done = meshc("submit", str(mesh), INTAKE, "--json", json.dumps(task(10_000)), "--redis",
                 node, "--cluster", cwd=workdir)  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_for(lambda: summaries(cluster.url).get("doc-10000") == 1, what="the CLI's task")
    tail = meshc("tail", str(mesh), SUMMARY, "--redis", cluster.url, cwd=workdir)
    assert tail.returncode == 0, tail.stderr
    lines = [orjson.loads(line) for line in tail.stdout.splitlines()]
    assert len(lines) == TASKS + 1 and {e["agent"] for e in lines} == {"aggregator"}
    status = meshc("status", str(mesh), "--redis", node, "--cluster", "--format", "json",
                   cwd=workdir)  # fmt: skip
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["partitions"] == 16
    assert report["streams"][SUMMARY]["length"] == TASKS + 1
    group = report["streams"][INTAKE]["groups"]["coordinator"]
    assert group["exists"] and group["lag"] == 0
    live = meshc("render", str(mesh), "--format", "text", "--live", "--redis", cluster.url,
                 cwd=workdir)  # fmt: skip
    assert live.returncode == 0, live.stderr
    assert f"len {TASKS + 1}" in live.stdout


def test_one_partition_is_refused_on_a_cluster(cluster: LocalCluster, workdir: Path) -> None:
    mesh = review_mesh(workdir, 1)
    run = meshc("run", str(mesh), "--redis", cluster.url, cwd=workdir)
    assert run.returncode == 2
    assert "one partition" in run.stderr and "partitions:" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    submit = meshc("submit", str(mesh), INTAKE, "--json", json.dumps(task(1)), "--redis",
                   "redis://" + cluster.nodes[0].address, "--cluster", cwd=workdir)  # fmt: skip
    assert submit.returncode == 2 and "one partition" in submit.stderr, submit.stderr
    assert cluster.keys_by_node() == {n.address: [] for n in cluster.primaries()}


def test_cluster_flag_needs_an_address(workdir: Path) -> None:
    mesh = review_mesh(workdir, 16)
    done = meshc("status", str(mesh), "--cluster", cwd=workdir, env={"REDIS_URL": ""})
    assert done.returncode == 2 and "--cluster needs the address" in done.stderr, done.stderr


@pytest.mark.parametrize("partitions", [4])
def test_worker_partitions_subset(cluster: LocalCluster, workdir: Path, partitions: int) -> None:
    """``meshc run --partitions`` narrows every worker; the rest waits for another run."""
    mesh = review_mesh(workdir, partitions)
    from meshc.codegen.build import build_cached

    spec = build_cached(str(mesh), workdir).load_spec()
    with MeshClient(spec, cluster.url) as client:
        sent = client.submit_many([task(i) for i in range(40)])
    served = {s.trace for s in sent if s.key.endswith(("{doc_review:0}", "{doc_review:1}"))}
    with meshc_run(mesh, cluster.url, workdir, "--partitions", "0-1") as run:
        wait_for(lambda: run.text().count("serving partitions (0, 1)") >= 6, what="workers")
        with MeshClient(spec, cluster.url) as client:
            found = client.wait_many(served, timeout=60)
            assert set(found) == served
            time.sleep(1.0)
            counts = summaries(cluster.url, partitions)
    assert sum(counts.values()) == len(served)  # partitions 2 and 3 were left alone
