"""``meshc serve`` as a user runs it: settings checked first, a clear line and exit 2
for each mistake, the OpenAPI document, and a real process that serves and stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from unittest import mock

import httpx
import orjson
import pytest
from gateway_kit import AUTH, TOKEN, Start, cli, wait_until
from meshc.runtime.process.server import free_port
from meshc.runtime.spec import MeshSpec
from openapi_spec_validator import validate

Mesh = tuple[MeshSpec, str]


@pytest.fixture
def mesh_file(idle: Mesh, tmp_path: Path) -> str:
    return str(tmp_path / "idle.yaml")


def test_the_openapi_document_is_valid_typed_and_stable(
    idle: Mesh, mesh_file: str, start_gateway: Start
) -> None:
    first, second = cli("serve", mesh_file, "--openapi"), cli("serve", mesh_file, "--openapi")
    assert first.code == 0 and first.out == second.out
    doc = orjson.loads(first.out)
    validate(doc)
    body = doc["paths"]["/tasks/i.in"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/Line"}
    line = doc["components"]["schemas"]["Line"]
    assert line["required"] == ["id", "text"] and line["additionalProperties"] is False
    result = doc["components"]["schemas"]["gateway.Result"]["properties"]["data"]
    assert result == {"anyOf": [{"$ref": "#/components/schemas/Line"}]}
    assert doc["info"]["version"] == "3" and doc["security"] == [{"bearer": []}]
    spec, url = idle
    with httpx.Client(base_url=start_gateway(spec, url), headers=AUTH) as http:
        served = http.get("/openapi.json")
    assert served.content.decode() + "\n" == first.out


def test_the_review_mesh_document_is_valid() -> None:
    from importlib.resources import as_file, files

    with as_file(files("meshc.examples").joinpath("doc_review.yaml")) as path:
        done = cli("serve", str(path), "--openapi", "--no-auth")
    assert done.code == 0, done.err
    doc = orjson.loads(done.out)
    validate(doc)
    schemas = doc["components"]["schemas"]
    assert {"ReviewTask", "ReviewSummary", "Finding"} <= set(schemas)
    assert "security" not in doc


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {}, "no tokens: give --tokens PATH"),
        (["--tokens", "/nonexistent/tokens"], {}, "--tokens /nonexistent/tokens: cannot read"),
        ([], {"MESHC_SERVE_TOKENS": "short"}, "at least 16 characters"),
        (["--no-auth", "--webhook", "http://127.0.0.1:9/h"], {}, "webhooks are signed"),
        (["--no-auth", "--webhook", "ftp://x/"], {}, "--webhook must be an http:// or https://"),
        (["--no-auth", "--max-wait", "0"], {}, "--max-wait must be more than 0"),
        (["--no-auth", "--max-waits", "0"], {}, "--max-waits must be at least 1"),
        (["--no-auth", "--port", "70000"], {}, "--port must be between 0 and 65535"),
        (["--no-auth", "--redis", "redis://127.0.0.1:1/0"], {}, "cannot reach the server"),
    ],
)
def test_each_mistake_is_one_line_and_exit_2(
    mesh_file: str, args: list[str], env: dict[str, str], message: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MESHC_")}
    with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
        done = cli("serve", mesh_file, "--redis", "redis://127.0.0.1:1/0", *args)
    assert done.code == 2, done.err
    assert message in done.err and "Traceback" not in done.err
    assert done.err.count("\n") == 1


def test_a_port_in_use_is_exit_2(idle: Mesh, mesh_file: str) -> None:
    _, url = idle
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = cli("serve", mesh_file, "--no-auth", "--redis", url, "--port", port)
    assert done.code == 2 and f"cannot listen on 127.0.0.1:{port}" in done.err


def test_without_the_extra_it_says_how_to_install_it(mesh_file: str) -> None:
    real = __import__("importlib.util").util.find_spec

    def hidden(name: str, *a: object) -> object:
        return None if name == "uvicorn" else real(name, *a)

    with mock.patch("importlib.util.find_spec", hidden):
        done = cli("serve", mesh_file, "--no-auth")
    assert done.code == 2
    assert "(missing: uvicorn)" in done.err and "pip install 'meshc[serve]'" in done.err


def test_serve_runs_as_a_process_and_stops_on_sigterm(idle: Mesh, mesh_file: str) -> None:
    _, url = idle
    port = free_port()
    env = {**os.environ, "MESHC_SERVE_TOKENS": f"other-token-0123456789, {TOKEN}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshc", "serve", mesh_file, "--redis", url, "--port", str(port)],
        env=env, stderr=subprocess.PIPE, text=True, cwd=Path(mesh_file).parent,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
            wait_until(lambda: _answers(http), what="the gateway answers")
            sent = http.post("/tasks/i.in", json={"id": "a", "text": "b"})
            assert sent.status_code == 202
            assert http.get(sent.headers["location"]).status_code == 202
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "mesh idle; POST http://127.0.0.1" in err and "Traceback" not in err


def test_no_auth_is_announced_loudly(idle: Mesh, mesh_file: str) -> None:
    _, url = idle
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshc", "serve", mesh_file, "--redis", url, "--port", str(port),
         "--no-auth"],
        stderr=subprocess.PIPE, text=True, cwd=Path(mesh_file).parent,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            wait_until(lambda: _answers(http), what="the gateway answers")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert "WARNING: AUTHENTICATION IS OFF (--no-auth)" in err


def _answers(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False
