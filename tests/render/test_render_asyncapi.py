"""``meshc render --format asyncapi``: valid for the official parser, and true to the mesh.

The byte-for-byte documents of every example are golden files (test_render_golden);
here the official AsyncAPI parser validates each of them (YAML and JSON), and the
document is checked against the mesh it describes: channels, addresses, operations,
consumer groups, and payload schemas that accept what the mesh's models accept and
refuse what they refuse.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meshc.cli import main
from meshc.core import CoreMesh
from meshc.render import render
from meshc.runtime import keys
from meshc.testing.strategies import NearValid, near_valid, payloads
from render_support import ASYNCAPI_PARSER, EXAMPLE_IDS, EXAMPLES, INSTALL, ROOT, example_core

CHECK = Path(__file__).with_name("asyncapi_check.cjs")
ERROR = 0  # the parser's DiagnosticSeverity.Error
PARTITIONED = ROOT / "tests/render/cases/partitioned.yaml"
DOC = str(ROOT / "meshes" / "doc_review.yaml")


def document(core: CoreMesh) -> dict[str, Any]:
    out = render(core, "asyncapi")
    assert isinstance(out, str)
    data: dict[str, Any] = yaml.safe_load(out)
    return data


@pytest.fixture(scope="session")
def node_parser() -> str:
    """``node`` and the pinned parser package; in CI their absence fails."""
    node = shutil.which("node")
    if node is None or not ASYNCAPI_PARSER.is_dir():
        reason = (
            f"the AsyncAPI check needs node and {ASYNCAPI_PARSER}; install them with: {INSTALL}"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return node


def validate(node: str, documents: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    done = subprocess.run(
        [node, str(CHECK), str(ASYNCAPI_PARSER.parents[2])],
        input=json.dumps(documents),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results: dict[str, list[dict[str, Any]]] = json.loads(done.stdout)
    return results


def test_every_example_passes_the_official_parser(node_parser: str) -> None:
    documents = {}
    for path in EXAMPLES:
        core = example_core(path)
        documents[f"{path.stem}.yaml"] = str(render(core, "asyncapi"))
        documents[f"{path.stem}.json"] = str(render(core, "asyncapi", as_json=True))
    results = validate(node_parser, documents)
    assert set(results) == set(documents)
    errors = {
        name: [
            f"{d['code']} at {d['path']}: {d['message']}" for d in found if d["severity"] == ERROR
        ]
        for name, found in results.items()
    }
    assert not any(errors.values()), {k: v for k, v in errors.items() if v}


def test_the_parser_check_reports_a_broken_document(node_parser: str) -> None:
    """The harness itself: an error must come back as an error, not as a pass."""
    doc = document(example_core(EXAMPLES[0]))
    first = next(iter(doc["operations"].values()))
    first["channel"] = {"$ref": "#/channels/no.such.stream"}
    doc["info"].pop("version")
    results = validate(node_parser, {"broken": yaml.safe_dump(doc)})
    assert any(d["severity"] == ERROR for d in results["broken"]), results


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_every_stream_and_dead_letter_stream_is_a_channel(path: Path) -> None:
    core = example_core(path)
    doc = document(core)
    readers = [a for a in core.agents.values() if a.reads]
    dead = {keys.dlq_stream(core.name, a.name) for a in readers}
    assert set(doc["channels"]) == set(core.streams) | dead
    assert (doc["info"]["title"], doc["info"]["version"]) == (core.name, str(core.version))
    for name, stream in core.streams.items():
        channel = doc["channels"][name]
        assert channel["address"] == name + ("{partition}" if core.partitions > 1 else "")
        (message,) = channel["messages"].values()
        assert message["payload"] == {"$ref": f"#/components/schemas/{stream.type}"}
    server = doc["servers"]["redis"]
    assert server["protocol"] == "redis" and "redis+cluster://" in server["description"]
    assert server["host"] == "{host}:{port}" and set(server["variables"]) == {"host", "port"}


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_an_operation_per_read_and_write_with_its_consumer_group(path: Path) -> None:
    core = example_core(path)
    ops = document(core)["operations"]
    receives = {(o["x-meshc-consumer-group"], _channel(o)) for o in ops.values()
                if o["action"] == "receive"}  # fmt: skip
    sends = {(k.split(".send.")[0], _channel(o)) for k, o in ops.items() if o["action"] == "send"}
    assert receives == {(a.name, s) for a in core.agents.values() for s in a.read_names}
    dead = {(a.name, keys.dlq_stream(core.name, a.name)) for a in core.agents.values() if a.reads}
    assert sends == {(a.name, s) for a in core.agents.values() for s in a.write_names} | dead


def _channel(operation: dict[str, Any]) -> str:
    ref: str = operation["channel"]["$ref"]
    assert ref.startswith("#/channels/")
    return ref.removeprefix("#/channels/")


@pytest.mark.parametrize("path", EXAMPLES, ids=EXAMPLE_IDS)
def test_every_reference_resolves(path: Path) -> None:
    doc = document(example_core(path))
    refs = list(_refs(doc))
    assert refs
    for ref in refs:
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
            node = node[part]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_partitions_put_the_hash_tag_in_a_channel_parameter() -> None:
    core = example_core(PARTITIONED)
    doc = document(core)
    param = doc["components"]["parameters"]["partition"]
    tags = [keys.tag(core.name, p, core.partitions) for p in range(core.partitions)]
    assert param["enum"] == tags == ["{orders:0}", "{orders:1}", "{orders:2}", "{orders:3}"]
    assert "order_id" in param["description"]
    for name, channel in doc["channels"].items():
        assert channel["address"] == name + "{partition}"
        assert channel["parameters"] == {"partition": {"$ref": "#/components/parameters/partition"}}
        # the address with a tag filled in is the key the runtime uses
        assert channel["address"].replace("{partition}", tags[2]) == keys.stream_key(
            name, core.name, 2, core.partitions
        )
    assert "slot" in doc["servers"]["redis"]["description"]


def test_headers_follow_the_wire_format() -> None:
    doc = document(example_core(Path(DOC)))
    schemas = doc["components"]["schemas"]
    intake = doc["channels"]["doc.review.tasks"]["messages"]["ReviewTask"]
    lane = doc["channels"]["doc.review.grammar"]["messages"]["ReviewTask"]
    assert intake["headers"] == {"$ref": "#/components/schemas/meshc.RootHeader"}
    assert lane["headers"] == {"$ref": "#/components/schemas/meshc.Header"}
    header = schemas["meshc.Header"]
    assert header["required"] == ["trace", "parent", "agent", "attempt"]
    assert set(header["properties"]) == {"trace", "parent", "agent", "attempt", "took"}
    assert "required" not in schemas["meshc.RootHeader"]  # an outside producer sends data alone
    took = jsonschema.Draft7Validator(header["properties"]["took"])
    assert took.is_valid("12") and took.is_valid("0.250") and not took.is_valid("fast")
    dlq = doc["channels"]["doc_review.dlq.aggregator"]["messages"]["DeadLetter"]
    assert dlq["headers"] == {"$ref": "#/components/schemas/meshc.DeadLetter"}
    dead = schemas["meshc.DeadLetter"]["properties"]
    assert {"error", "source_stream", "source_id", "deliveries", "join"} <= set(dead)
    assert "doc_review.dlq.ingestion" not in doc["channels"]  # a producer never dead-letters


def test_json_and_yaml_say_the_same() -> None:
    core = example_core(PARTITIONED)
    as_json = render(core, "asyncapi", as_json=True)
    assert isinstance(as_json, str) and as_json.endswith("}\n")
    assert json.loads(as_json) == document(core)
    assert "&id" not in str(render(core, "asyncapi"))  # no YAML anchors for shared schemas


@functools.cache
def _payload_checker(path: Path, stream: str) -> jsonschema.Draft7Validator:
    """The stream's payload schema with the document as its root, so $refs resolve."""
    doc = document(example_core(path))
    (message,) = doc["channels"][stream]["messages"].values()
    return jsonschema.Draft7Validator({**doc, **message["payload"]})


@functools.cache
def _strategies(
    path: Path, stream: str
) -> tuple[st.SearchStrategy[dict[str, Any]], st.SearchStrategy[NearValid]]:
    core = example_core(path)
    return payloads(core, stream), near_valid(core, stream)


STREAMS = [(p, s) for p in (Path(DOC), PARTITIONED) for s in sorted(example_core(p).streams)]


@pytest.mark.parametrize(("path", "stream"), STREAMS, ids=[f"{p.stem}:{s}" for p, s in STREAMS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_payload_schemas_agree_with_the_models(
    path: Path, stream: str, data: st.DataObject
) -> None:
    checker = _payload_checker(path, stream)
    good = data.draw(_strategies(path, stream)[0])
    assert not list(checker.iter_errors(good)), good
    bad = data.draw(_strategies(path, stream)[1])
    assert list(checker.iter_errors(bad.payload)), f"{bad}: {bad.payload}"


def test_output_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", DOC, "--format", "asyncapi"]) == 0
    assert capsys.readouterr().out.startswith("asyncapi: 3.0.0\n")
    assert main(["render", DOC, "--format", "asyncapi", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["asyncapi"] == "3.0.0"
    target = tmp_path / "doc.json"
    assert main(["render", DOC, "--format", "asyncapi", "-o", str(target)]) == 0
    assert json.loads(target.read_text("utf-8"))["info"]["title"] == "doc_review"
    target = tmp_path / "doc.yaml"
    assert main(["render", DOC, "--format", "asyncapi", "-o", str(target)]) == 0
    assert target.read_text("utf-8") == render(example_core(Path(DOC)), "asyncapi")
    capsys.readouterr()
    assert main(["render", DOC, "--format", "mermaid", "--json"]) == 2
    assert "--json is for --format asyncapi" in capsys.readouterr().err
    assert main(["render", DOC, "--format", "asyncapi", "--live"]) == 2
    assert "--live annotates" in capsys.readouterr().err
