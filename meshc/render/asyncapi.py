"""AsyncAPI 3.0.0 document of a mesh: what each stream carries and who reads or writes it.

Every stream is a channel whose address is its server key (``S{partition}`` with a
``partition`` parameter when the mesh has several, the tag being ``{<mesh>:<p>}``),
carrying one message: the payload as JSON in the entry's ``data`` field, described by
the JSON Schema of its declared type, and the wire header (``trace``, ``parent``,
``agent``, ``attempt``, ``took``) as message headers. Each agent's read is a
``receive`` operation and each write a ``send``. AsyncAPI's redis bindings define no
fields, so the consumer group an agent reads with is the ``x-meshc-consumer-group``
extension. Dead-letter streams (``<mesh>.dlq.<agent>``) are channels too.

The document is built as plain dicts in a fixed order (streams in the diagrams'
topological order, types by name) and dumped as YAML or JSON, so it is the same bytes
on every run and does not change when the mesh file's keys are reordered.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from meshc.core import CoreAgent, CoreMesh
from meshc.graph import readers, writers
from meshc.render.common import topology
from meshc.render.payloads import Schema, type_schemas
from meshc.runtime import keys

VERSION = "3.0.0"
SERVER = "redis"
PARTITION = "partition"
ENUM_LIMIT = 64  # partition tags listed one by one up to this many; beyond, an example
SCHEMAS = "#/components/schemas/"
DLQ_MESSAGE = "DeadLetter"
ROOT_HEADER, HEADER_SCHEMA, DLQ_HEADER_SCHEMA = (
    "meshc.RootHeader",
    "meshc.Header",
    "meshc.DeadLetter",
)
HEADER = {
    "trace": "the task this entry belongs to: the id of its root entry (meshc submit "
    "writes a random hex id); an entry without one is a root and its own entry id is the trace",
    "parent": "the id of the entry this one was made from (empty on a root)",
    "agent": "the agent that wrote the entry",
    "attempt": "delivery count of the input entry that produced this one, from 1",
    "took": "the handler's wall time in milliseconds, a decimal number",
}
DLQ_HEADER = {
    "error": "why the entry failed: the handler's exception, or the validation error",
    "source_stream": "the stream the failed entry was read from (empty for a failed join)",
    "source_id": "the failed entry's id (for a failed join: the last partial's id)",
    "deliveries": "how many times the entry was delivered before it was given up",
    "trace": HEADER["trace"],
    "agent": "the agent that gave up on the entry",
    "source_parent": "the failed entry's own `parent` header, kept for a re-drive",
    "source_agent": "the failed entry's own `agent` header, kept for a re-drive",
}
DLQ_REQUIRED = ["error", "source_stream", "source_id", "deliveries", "trace", "agent"]
DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
COUNT = "^[1-9][0-9]*$"


def asyncapi(core: CoreMesh, *, as_json: bool = False) -> str:
    """The document as YAML (default) or as JSON; both end with a newline."""
    doc = document(core)
    if as_json:
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    dumped: str = yaml.dump(
        doc, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=100
    )
    return dumped


class _PlainDumper(yaml.SafeDumper):
    """Writes a schema used twice in full both times: no ``&id001`` anchors and aliases,
    which some AsyncAPI tools do not follow and every reader has to look up."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def document(core: CoreMesh) -> dict[str, Any]:
    """The AsyncAPI document as plain data, keys in the order they are written out."""
    topo = topology(core)
    written, read = writers(core), readers(core)
    channels: dict[str, Any] = {
        s: _stream_channel(core, s, written.get(s, []), read.get(s, [])) for s in topo.streams
    }
    operations: dict[str, Any] = {}
    for name in topo.agents:
        agent = core.agents[name]
        for stream in topo.in_order(agent.read_names):
            operations[f"{name}.receive.{stream}"] = _receive(core, agent, stream)
        for stream in topo.in_order(agent.write_names):
            operations[f"{name}.send.{stream}"] = _send(core, agent, stream)
        if agent.read_names:
            dlq = keys.dlq_stream(core.name, name)
            channels[dlq] = _dlq_channel(core, agent)
            operations[f"{name}.send.{dlq}"] = _dead_letter(core, agent, dlq)
    components: dict[str, Any] = {"schemas": type_schemas(core, SCHEMAS) | header_schemas()}
    if core.partitions > 1:
        components["parameters"] = {PARTITION: _partition_parameter(core)}
    return {
        "asyncapi": VERSION,
        "info": _info(core),
        "defaultContentType": "application/json",
        "servers": {SERVER: _server(core)},
        "channels": channels,
        "operations": operations,
        "components": components,
    }


def _info(core: CoreMesh) -> dict[str, Any]:
    about = _sentence(core.description) if core.description.strip() else f"The mesh `{core.name}`."
    return {
        "title": core.name,
        "version": str(core.version),
        "description": (
            f"{about}\n\nAgents coordinate only through Redis Streams: each channel is a "
            "stream, each entry holds its payload as JSON in the field `data` and the "
            "header as flat fields. Generated by `meshc render --format asyncapi`."
        ),
    }


def _server(core: CoreMesh) -> dict[str, Any]:
    if core.partitions > 1:
        cluster = (
            "On a Redis or Valkey Cluster, name any nodes "
            "(`redis+cluster://host:port[,host:port...]`, TLS: `rediss+cluster://`): every "
            f"key of one partition carries the hash tag `{{{core.name}:<p>}}`, so the "
            "keys of a task share one slot."
        )
    else:
        cluster = (
            "A Redis or Valkey Cluster (`redis+cluster://host:port[,host:port...]`) needs "
            "`partitions` above 1; with one partition the keys are the plain stream names."
        )
    return {
        "host": "{host}:{port}",
        "protocol": "redis",
        "title": "Redis or Valkey server",
        "description": (
            "The server holding the mesh's streams, as `redis://host:port` (TLS: "
            f"`rediss://`). {cluster}"
        ),
        "variables": {
            "host": {"default": "127.0.0.1", "description": "host name or address"},
            "port": {"default": "6379", "description": "TCP port"},
        },
    }


def _partition_parameter(core: CoreMesh) -> dict[str, Any]:
    tags = [keys.tag(core.name, p, core.partitions) for p in range(core.partitions)]
    route = f"the payload field `{core.partition_key}`" if core.partition_key else "its trace"
    param: dict[str, Any] = {
        "description": (
            f"The partition's hash tag `{{{core.name}:<p>}}`: a task goes to partition "
            f"p = crc32({route}) mod {core.partitions}, and every entry of the task stays "
            "in that partition."
        ),
    }
    if core.partitions <= ENUM_LIMIT:
        param["enum"] = tags
    param["examples"] = [tags[0], tags[-1]]
    return param


def _address(core: CoreMesh, stream: str) -> str:
    return f"{stream}{{{PARTITION}}}" if core.partitions > 1 else stream


def _partitioned(core: CoreMesh, channel: dict[str, Any]) -> dict[str, Any]:
    if core.partitions > 1:
        channel["parameters"] = {PARTITION: {"$ref": f"#/components/parameters/{PARTITION}"}}
    return channel


def _stream_channel(
    core: CoreMesh, name: str, writer: list[str], readers_: list[str]
) -> dict[str, Any]:
    stream = core.streams[name]
    producer = any(core.agents[w].role == "producer" for w in writer)
    notes = [_sentence(stream.description)] if stream.description.strip() else []
    notes.append(f"Written by {_names(writer)} (XADD).")
    if readers_:
        notes.append(
            f"Read by the consumer group{'s' if len(readers_) > 1 else ''} of "
            f"{_names(readers_)} (XREADGROUP, then XACK)."
        )
    if stream.terminal:
        notes.append("Terminal: callers read it with XREAD, without a consumer group.")
    notes += _retention(stream.retention, stream.max_backlog)
    message = {
        "name": stream.type,
        "title": f"{stream.type} entry",
        "summary": f"one entry of `{name}`",
        "contentType": "application/json",
        "correlationId": {"location": "$message.header#/trace"},
        "headers": {"$ref": SCHEMAS + (ROOT_HEADER if producer else HEADER_SCHEMA)},
        "payload": {"$ref": SCHEMAS + stream.type},
    }
    channel = {
        "address": _address(core, name),
        "title": name,
        "description": " ".join(notes),
        "messages": {stream.type: message},
    }
    return _partitioned(core, channel)


def _retention(retention: Any, max_backlog: int | None) -> list[str]:
    notes = []
    if retention is not None and retention.maxlen is not None:
        notes.append(f"Trimmed to about {retention.maxlen} entries.")
    if retention is not None and retention.max_age is not None:
        notes.append(f"Entries older than {retention.max_age:g} s are trimmed.")
    if retention is not None:
        notes.append("Trimming never removes an entry a consumer group has not acknowledged.")
    if max_backlog is not None:
        notes.append(f"`meshc submit` refuses new tasks past {max_backlog} unprocessed entries.")
    return notes


def header_schemas() -> dict[str, Schema]:
    """The wire headers, keyed by names no mesh type can have (type names have no dot)."""
    props = {
        "trace": _text(HEADER["trace"]),
        "parent": _text(HEADER["parent"]),
        "agent": _text(HEADER["agent"]),
        "attempt": _text(HEADER["attempt"], COUNT),
    }
    dead = {field: _text(text) for field, text in DLQ_HEADER.items()}
    dead["deliveries"]["pattern"] = COUNT
    dead["join"] = _text("for a failed join: the join's id (its key values)")
    return {
        ROOT_HEADER: {
            "description": "A root entry's header: meshc submit writes all four fields; an "
            "outside producer may send `data` alone.",
            "type": "object",
            "properties": props,
        },
        HEADER_SCHEMA: {
            "description": "The header every agent's output carries.",
            "type": "object",
            "required": list(props),
            "properties": {**props, "took": _text(HEADER["took"], DECIMAL)},
        },
        DLQ_HEADER_SCHEMA: {
            "description": "The fields of a dead letter, beside its `data`.",
            "type": "object",
            "required": DLQ_REQUIRED,
            "properties": dead,
        },
    }


def _text(description: str, pattern: str | None = None) -> Schema:
    schema: Schema = {"type": "string", "description": description}
    if pattern is not None:
        schema["pattern"] = pattern
    return schema


def _dlq_channel(core: CoreMesh, agent: CoreAgent) -> dict[str, Any]:
    name = keys.dlq_stream(core.name, agent.name)
    payload = "The failed entry's `data` as it was read: it may not fit its type."
    if agent.join is not None:
        payload += " For a join whose merge kept failing: an object of lane -> stored partial."
    message = {
        "name": DLQ_MESSAGE,
        "title": f"dead letter of {agent.name}",
        "summary": f"an entry `{agent.name}` gave up on",
        "contentType": "application/json",
        "correlationId": {"location": "$message.header#/trace"},
        "headers": {"$ref": SCHEMAS + DLQ_HEADER_SCHEMA},
        "payload": {"description": payload},
    }
    channel = {
        "address": _address(core, name),
        "title": name,
        "description": (
            f"Dead letters of `{agent.name}`: entries that failed `max_deliveries` times, "
            "or at once when their payload does not fit the stream's type. "
            "`meshc dlq list|redrive` shows them and puts them back."
        ),
        "messages": {DLQ_MESSAGE: message},
    }
    return _partitioned(core, channel)


def _receive(core: CoreMesh, agent: CoreAgent, stream: str) -> dict[str, Any]:
    if agent.join is not None:
        commit = (
            "one script acknowledges each partial (XACK) into the join state; the result is "
            "added once, when every lane is in or the join times out"
        )
    else:
        commit = (
            "one server-side script acknowledges each entry (XACK) and adds its outputs "
            "only if that XACK counted"
        )
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{stream}"},
        "title": f"{agent.name} reads {stream}",
        "description": (
            f"`{agent.name}` ({agent.role}) reads with XREADGROUP in its consumer group "
            f"`{agent.name}`, whose replicas compete as consumers; {commit}."
        ),
        "messages": [{"$ref": f"#/channels/{stream}/messages/{core.streams[stream].type}"}],
        "x-meshc-consumer-group": agent.name,
    }


def _send(core: CoreMesh, agent: CoreAgent, stream: str) -> dict[str, Any]:
    how = (
        "`meshc submit` and outside clients write under its name (XADD)"
        if agent.role == "producer"
        else "its commit script adds the entry (XADD) with the wire header"
    )
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{stream}"},
        "title": f"{agent.name} writes {stream}",
        "description": f"`{agent.name}` ({agent.role}) is the one writer of `{stream}`: {how}.",
        "messages": [{"$ref": f"#/channels/{stream}/messages/{core.streams[stream].type}"}],
    }


def _dead_letter(core: CoreMesh, agent: CoreAgent, dlq: str) -> dict[str, Any]:
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{dlq}"},
        "title": f"{agent.name} dead-letters to {dlq}",
        "description": (
            f"`{agent.name}` acknowledges an entry it gives up on and adds it here, in one script."
        ),
        "messages": [{"$ref": f"#/channels/{dlq}/messages/{DLQ_MESSAGE}"}],
    }


def _sentence(text: str) -> str:
    """One line of prose that ends like a sentence, so more can follow it."""
    line = " ".join(text.split())
    return line if line.endswith((".", "!", "?")) else line + "."


def _names(names: list[str]) -> str:
    quoted = [f"`{n}`" for n in sorted(names)]
    return ", ".join(quoted) if quoted else "nobody"
