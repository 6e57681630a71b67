"""``meshc compile --deploy compose|kubernetes``: deterministic files that validate.

Deployments are checked against the published Kubernetes schemas (``kubernetes-validate``,
strict: unknown fields are errors). KEDA's ScaledObject is a custom resource that package
does not know, so it is checked against the parts of KEDA's CRD that meshc uses (with
unknown fields refused), and against the mesh: one trigger per input key, on the
agent's consumer group. No cluster runs here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from cluster_kit import REPO, review_mesh
from meshc.codegen.deploy import dns_name
from meshc.runtime import keys

K8S_VERSION = "1.30.0"
LANES = ("grammar", "clarity", "tone", "structure")
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_INT = {"type": "integer"}
SCALED_OBJECT = {  # the fields of KEDA's ScaledObject (keda.sh/v1alpha1) meshc writes
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "labels": _STR_MAP},
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}},
                    "additionalProperties": False,
                },
                "minReplicaCount": _INT,
                "maxReplicaCount": _INT,
                "pollingInterval": _INT,
                "cooldownPeriod": _INT,
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"enum": ["redis-streams", "redis-cluster-streams"]},
                            "metadata": _STR_MAP,
                        },
                    },
                },
            },
        },
    },
}
# Metadata keys of KEDA's redis(-cluster)-streams scalers (docs of KEDA 2.11-2.16).
REDIS_STREAMS_KEYS = {
    "address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
    "addresses", "addressesFromEnv", "hosts", "hostsFromEnv", "ports", "portsFromEnv",
    "usernameFromEnv", "passwordFromEnv", "stream", "consumerGroup", "pendingEntriesCount",
    "streamLength", "lagCount", "activationLagCount", "enableTLS", "unsafeSsl", "databaseIndex",
}  # fmt: skip


def _compile(mesh: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "meshc", "compile", mesh.name, "-o", str(out), *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=mesh.parent, timeout=120)


def _docs(folder: Path) -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(folder.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
    ]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("deploy")
    mesh = review_mesh(folder, 16)
    done = _compile(mesh, folder / "out", "--deploy", "compose", "--deploy", "kubernetes")
    assert done.returncode == 0, done.stderr
    return folder / "out" / "doc_review"


def test_deployments_validate_against_the_kubernetes_schemas(compiled: Path) -> None:
    docs = _docs(compiled / "deploy" / "kubernetes")
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(
        f"doc-review-{a}" for a in ("aggregator", "coordinator", *LANES)
    )
    for doc in deployments:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        pod = doc["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        agent = doc["metadata"]["name"].removeprefix("doc-review-")
        assert container["command"] == ["python", "-m", f"doc_review.agents.{agent}"]
        probe = container["livenessProbe"]["exec"]["command"]
        assert probe[:3] == ["python", "-m", "meshc.runtime.process.health"]
        env = {e["name"]: e for e in container["env"]}
        assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "doc-review-redis",
                                                                  "key": "url"}  # fmt: skip
        assert env["MESHC_HEALTH_FILE"]["value"] == probe[3]
        assert doc["spec"]["selector"]["matchLabels"].items() <= (
            doc["spec"]["template"]["metadata"]["labels"].items()
        )
        assert pod["terminationGracePeriodSeconds"] >= 30


def test_validation_catches_a_broken_deployment(compiled: Path) -> None:
    """The schema check is real: a wrong type and an unknown field are refused."""
    doc = next(d for d in _docs(compiled / "deploy" / "kubernetes") if d["kind"] == "Deployment")
    doc["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    doc["spec"]["replicas"] = 2
    doc["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_scaled_objects_scale_each_agent_on_its_group_lag(compiled: Path) -> None:
    docs = _docs(compiled / "deploy" / "kubernetes")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    assert len(scaled) == len(deployments)
    for doc in scaled:
        jsonschema.validate(doc, SCALED_OBJECT)
        target = doc["spec"]["scaleTargetRef"]["name"]
        assert target == doc["metadata"]["name"] and target in deployments
        agent = target.removeprefix("doc-review-")
        reads = (
            [f"doc.suggestions.{lane}" for lane in LANES]
            if agent == "aggregator"
            else (["doc.review.tasks"] if agent == "coordinator" else [f"doc.review.{agent}"])
        )
        want = {keys.stream_key(s, "doc_review", p, 16) for s in reads for p in range(16)}
        triggers = doc["spec"]["triggers"]
        assert {t["metadata"]["stream"] for t in triggers} == want
        container = deployments[target]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"] for e in container["env"]}
        for t in triggers:
            meta = t["metadata"]
            assert t["type"] == "redis-cluster-streams"  # 16 partitions: a cluster
            assert set(meta) <= REDIS_STREAMS_KEYS
            assert meta["consumerGroup"] == agent
            assert int(meta["lagCount"]) >= 1 and "activationLagCount" in meta
            assert meta["addressesFromEnv"] in env and meta["passwordFromEnv"] in env
        spec = doc["spec"]
        assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert spec["minReplicaCount"] == deployments[target]["spec"]["replicas"]


def test_compose_file_has_one_service_per_agent(compiled: Path) -> None:
    compose = yaml.safe_load((compiled / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    agents = {n for n in services if n != "valkey"}
    assert agents == {f"doc-review-{a}" for a in ("aggregator", "coordinator", *LANES)}
    for name in agents:
        svc = services[name]
        agent = name.removeprefix("doc-review-")
        assert svc["command"] == ["python", "-m", f"doc_review.agents.{agent}"]
        assert svc["deploy"]["replicas"] == 1 and svc["stop_signal"] == "SIGTERM"
        assert svc["healthcheck"]["test"][:4] == [
            "CMD",
            "python",
            "-m",
            "meshc.runtime.process.health",
        ]
        assert "REDIS_URL" in svc["environment"] and "MESHC_HEALTH_FILE" in svc["environment"]
    assert services["valkey"]["profiles"] == ["local"]


def test_single_partition_mesh_uses_the_single_server_scaler(tmp_path: Path) -> None:
    mesh = tmp_path / "doc_review.yaml"
    mesh.write_text((REPO / "meshes" / "doc_review.yaml").read_text())
    assert _compile(mesh, tmp_path / "out", "--deploy", "kubernetes").returncode == 0
    docs = _docs(tmp_path / "out" / "doc_review" / "deploy" / "kubernetes")
    triggers = [t for d in docs if d["kind"] == "ScaledObject" for t in d["spec"]["triggers"]]
    assert {t["type"] for t in triggers} == {"redis-streams"}
    assert {t["metadata"]["stream"] for t in triggers} >= {"doc.review.tasks"}
    assert all("addressFromEnv" in t["metadata"] for t in triggers)


def test_deploy_files_are_deterministic_and_kept(tmp_path: Path) -> None:
    mesh = review_mesh(tmp_path, 16)
    out = tmp_path / "out"
    assert _compile(mesh, out, "--deploy", "kubernetes", "--deploy", "compose").returncode == 0
    first = {p: p.read_bytes() for p in sorted((out / "doc_review" / "deploy").rglob("*.yaml"))}
    assert _compile(mesh, out, "--deploy", "compose", "--deploy", "kubernetes").returncode == 0
    again = {p: p.read_bytes() for p in sorted((out / "doc_review" / "deploy").rglob("*.yaml"))}
    assert first == again and len(first) == 8
    assert "/tmp" not in first[out / "doc_review" / "deploy" / "compose.yaml"].decode()[:300]
    # a compile without --deploy keeps them, and --check agrees they are fresh
    assert _compile(mesh, out).returncode == 0
    assert all(p.exists() for p in first)
    check = _compile(mesh, out, "--check", "--deploy", "kubernetes")
    assert check.returncode == 0, check.stdout + check.stderr
    # a mesh change makes them stale, and --check says which command refreshes them
    mesh.write_text(mesh.read_text().replace("partitions: 16", "partitions: 8"))
    stale = _compile(mesh, out, "--check", "--deploy", "kubernetes")
    assert stale.returncode == 1 and "--deploy kubernetes" in stale.stderr


@pytest.mark.parametrize(
    ("parts", "name"),
    [
        (("doc_review", "grammar"), "doc-review-grammar"),
        (("m", "Lens_A"), "m-lens-a-"),
        (("m", "x" * 80), "m-xxxx"),
    ],
)
def test_dns_names(parts: tuple[str, ...], name: str) -> None:
    got = dns_name(*parts)
    assert got.startswith(name) and len(got) <= 63
    assert got == got.lower() and got[0].isalnum() and got[-1].isalnum()
