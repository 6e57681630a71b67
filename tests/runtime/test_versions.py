"""Versions on the server: the record of the running mesh, stream ownership across
meshes, and workers that refuse to start against an incompatible record."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import orjson
import pytest
import redis
from meshc.runtime import compat, running
from meshc.runtime.errors import ConfigError
from meshc.runtime.process.agent import run_agent
from meshc.runtime.spec import MeshSpec, StreamSpec
from pydantic import BaseModel
from worker_kit import Result, Task, agent, mesh, worker


def form(**fields: object) -> str:
    return orjson.dumps({"fields": sorted([k, v] for k, v in fields.items())}).decode()


OLD = form(n="int", text="str")


@pytest.mark.parametrize(
    ("writer", "reader", "found"),
    [
        (OLD, OLD, []),
        (OLD, form(n="int", text="str", note=["optional", "str"]), []),  # optional added
        (form(n="int", text="str", note=["optional", "str"]), OLD, ["`note` is unknown"]),
        (OLD, form(n="int", text="str", note="str"), ["required field `note` is missing"]),
        (OLD, form(n="float", text="str"), []),  # widened
        (form(n="float", text="str"), OLD, ["`n` is float where the reader wants int"]),
        (form(n="int", text=["optional", "str"]), OLD, ["`text` may be null"]),
        (form(n="int", text="str"), form(n="int", text="any"), []),
        (
            form(n=["list", "int"], text="str"),
            form(n=["dict", "int"], text="str"),
            ["`n` changed shape (list to dict)"],
        ),  # fmt: skip
        (
            form(n="int", text={"fields": [["x", "int"]]}),
            form(n="int", text={"fields": [["x", "int"], ["y", "str"]]}),
            ["required field `text.y` is missing"],
        ),  # fmt: skip
    ],
)
def test_forms_follow_the_compatibility_rules(writer: str, reader: str, found: list[str]) -> None:
    got = compat.problems(writer, reader)
    assert len(got) == len(found) and all(f in g for f, g in zip(found, got, strict=True))


class Task2(BaseModel):
    n: int
    text: str = ""
    note: str


def versioned(name: str = "m", *, in_form: str = OLD, model: type[BaseModel] = Task) -> MeshSpec:
    m = mesh({"t.in": model, "t.out": Result}, [agent("echo", ("t.in",), ("t.out",))], name=name)
    m.streams["t.in"] = StreamSpec(
        "t.in", model, fingerprint=hashlib.sha256(in_form.encode()).hexdigest()[:16], form=in_form
    )
    return m


def echo(task: BaseModel, _ctx: object) -> Result:
    return Result(n=0, text="")


def test_a_worker_of_an_incompatible_version_refuses_before_it_is_ready(valkey_url: str) -> None:
    with redis.Redis.from_url(valkey_url) as client:
        running.claim(client, versioned(), running.record_fields(versioned()))
    breaking = versioned(in_form=form(n="int", text="str", note="str"), model=Task2)
    ready: list[bool] = []
    w = worker(breaking, "echo", echo, redis_url=valkey_url, on_ready=lambda: ready.append(True))
    with pytest.raises(ConfigError) as err:
        asyncio.run(w.run())
    assert ready == []
    message = str(err.value)
    assert "`t.in`" in message and "required field `note` is missing" in message
    assert "meshc rollout OLD NEW --apply" in message
    assert run_agent(breaking, "echo", echo, redis_url=valkey_url) == 2  # exit before ready
    with redis.Redis.from_url(valkey_url) as client:
        assert client.exists("t.in") == 0  # no group created for it either


def test_a_worker_of_a_compatible_version_starts(valkey_url: str) -> None:
    with redis.Redis.from_url(valkey_url) as client:
        running.claim(client, versioned(), running.record_fields(versioned()))
    compatible = versioned(in_form=form(n="int", text="str", note=["optional", "str"]))
    stop = threading.Event()
    ready = threading.Event()
    w = worker(compatible, "echo", echo, redis_url=valkey_url, stop=stop, on_ready=ready.set)
    thread = threading.Thread(target=asyncio.run, args=(w.run(),))
    thread.start()
    try:
        assert ready.wait(10)
    finally:
        stop.set()
        thread.join()


def test_a_stream_belongs_to_one_mesh(valkey_url: str) -> None:
    client = redis.Redis.from_url(valkey_url)
    first, other = versioned("first"), versioned("other")
    running.claim(client, first, running.record_fields(first))
    beat = running.Heartbeat(client, "first")
    try:
        for take_over in (False, True):  # alive: not even --take-over takes its streams
            with pytest.raises(running.OwnershipError) as err:
                running.claim(client, other, running.record_fields(other), take_over=take_over)
            message = str(err.value)
            assert "`other` declares streams of another mesh: mesh `first` owns" in message
            assert "`t.in`, `t.out`" in message and "is running" in message
            assert ("--take-over" in message) and ("meshc rollout" in message) != take_over
        assert running.foreign_owners(client, other) == {"t.in": "first", "t.out": "first"}
        assert running.foreign_owners(client, first) == {}
    finally:
        beat.stop()  # a clean stop: the run is marked stopped
    with pytest.raises(running.OwnershipError, match="has stopped"):
        running.claim(client, other, running.record_fields(other))
    running.claim(client, other, running.record_fields(other), take_over=True)
    assert client.get(running.owner_key("t.in")) == b"other"
    assert running.read_record(client, "other")["declares"] == '["t.in","t.out"]'
    client.close()
