"""The Prometheus endpoint of a supervised mesh (``meshc run --metrics-port N``;
docs/observability.md).

Workers are processes of their own, so their counters and histograms live in
``prometheus_client``'s multi-process files: the endpoint makes a private folder
(mode 0700, removed when the mesh stops), hands it to every worker in its environment
(``MESHC_METRICS_DIR`` and ``PROMETHEUS_MULTIPROC_DIR``), and adds the files up at each
scrape with ``MultiProcessCollector``. When a worker exits its files are marked dead,
as the library asks (``mark_process_dead``); its counts stay in the totals.

What the server knows rather than a worker — each group's lag and pending entries and
each agent's calls in flight — is read at scrape time with the reads behind
``meshc status`` (:func:`meshc.ops.admin.status`), so the figures agree with it. The
supervisor itself counts the workers that exited because handler calls were stuck
(their exit code says so).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from meshc.ops import admin
from meshc.runtime.connect import MeshOpsError, redact
from meshc.runtime.process.supervisor import SupervisorEvent
from meshc.runtime.replica import EXIT_STUCK
from meshc.runtime.spec import MeshSpec
from meshc.runtime.telemetry.metrics import METRICS_DIR_ENV, MULTIPROC_ENV

log = logging.getLogger("meshc.metrics")
INSTALL_HINT = "pip install 'meshc[metrics]'"


class MetricsError(MeshOpsError):
    """Raised when the metrics endpoint cannot start: no ``prometheus_client``, or the
    port is taken."""


class ServerGauges:
    """A collector that reads lag, pending and calls in flight from the server at
    scrape time; a server it cannot reach shows as ``meshc_server_up 0``."""

    def __init__(self, mesh: MeshSpec, url: str) -> None:
        self.mesh = mesh
        self.url = url
        self.stuck: dict[str, int] = {}  # agent -> exits, counted by the supervisor
        self._lock = threading.Lock()

    def count_stuck(self, agent: str) -> None:
        with self._lock:
            self.stuck[agent] = self.stuck.get(agent, 0) + 1

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        name = self.mesh.name
        stuck = CounterMetricFamily(
            "meshc_worker_stuck_exits", "Worker exits because handler calls were stuck "
            "past their timeout (exit code 3)", labels=("mesh", "agent"),
        )  # fmt: skip
        with self._lock:
            for agent, n in sorted(self.stuck.items()):
                stuck.add_metric((name, agent), n)
        yield stuck
        up = GaugeMetricFamily("meshc_server_up", "1 when the scrape could read the server")
        try:
            report = admin.status(self.mesh, self.url)
        except Exception as exc:  # a scrape must answer even when the server does not
            log.warning("metrics: cannot read the server at %s: %s", redact(self.url), exc)
            up.add_metric((), 0)
            yield up
            return
        up.add_metric((), 1)
        yield up
        yield from _group_gauges(name, report)


def _group_gauges(mesh: str, report: dict[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    labels = ("mesh", "agent", "stream")
    lag = GaugeMetricFamily(
        "meshc_consumer_lag", "Entries of the stream not yet delivered to the agent's "
        "group", labels=labels,
    )  # fmt: skip
    pending = GaugeMetricFamily(
        "meshc_consumer_pending", "Entries delivered to the agent's group and not yet "
        "acknowledged (retries waiting included)", labels=labels,
    )  # fmt: skip
    flight = GaugeMetricFamily(
        "meshc_calls_in_flight", "Entries the agent's workers hold now (pending to a "
        "worker, not waiting for a retry)", labels=("mesh", "agent"),
    )  # fmt: skip
    held: dict[str, int] = {}
    for stream, s in report["streams"].items():
        for agent, g in s["groups"].items():
            lag.add_metric((mesh, agent, stream), g["lag"])
            pending.add_metric((mesh, agent, stream), g["pending"])
            held[agent] = held.get(agent, 0) + sum(c["pending"] for c in g["consumers"])
    for agent, n in sorted(held.items()):
        flight.add_metric((mesh, agent), n)
    yield from (lag, pending, flight)


class MetricsEndpoint:
    """The private folder, the HTTP server and the collectors of one supervised mesh.

    ``port`` 0 takes a free port (``self.port`` says which). Close it when the mesh
    stops: the server ends and the folder is removed.
    """

    def __init__(self, mesh: MeshSpec, url: str, host: str, port: int) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
            from prometheus_client.multiprocess import MultiProcessCollector
        except ImportError:
            raise MetricsError(f"--metrics-port needs prometheus_client: {INSTALL_HINT}") from None
        self.folder = tempfile.mkdtemp(prefix="meshc-metrics-")  # mode 0700
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.folder)  # type: ignore[no-untyped-call]
        self.gauges = ServerGauges(mesh, url)
        registry.register(self.gauges)
        try:
            self.server, self.thread = start_http_server(port, host, registry)
        except OSError as exc:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise MetricsError(f"metrics endpoint on {host}:{port}: {exc.strerror}") from None
        self.host, self.port = host, int(self.server.server_port)
        log.info("metrics at http://%s:%d/metrics", host, self.port)

    @property
    def env(self) -> dict[str, str]:
        """What every worker's environment gets: where to write its metric files."""
        return {METRICS_DIR_ENV: self.folder, MULTIPROC_ENV: self.folder}

    def watch(
        self, on_event: Callable[[SupervisorEvent], None] | None
    ) -> Callable[[SupervisorEvent], None]:
        """``on_event`` plus the bookkeeping of worker exits: their files are marked
        dead, and an exit for stuck handler calls is counted."""
        from prometheus_client import multiprocess

        def seen(event: SupervisorEvent) -> None:
            if event.kind in ("exit", "stop") and event.pid is not None:
                multiprocess.mark_process_dead(event.pid, self.folder)  # type: ignore[no-untyped-call]
                if event.returncode == EXIT_STUCK:
                    self.gauges.count_stuck(event.name.split("#")[0])
            if on_event is not None:
                on_event(event)

        return seen

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        shutil.rmtree(self.folder, ignore_errors=True)
