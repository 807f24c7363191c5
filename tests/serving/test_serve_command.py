"""`lmforge serve` as a user starts it: a real process on 127.0.0.1, answering until it is stopped."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from lmforge.cli import main
from lmforge.commands import serve

pytest.importorskip("uvicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_binds_to_localhost_and_answers(tiny_run):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lmforge", "serve", str(tiny_run.parent), "--port", str(port),
                               "--device", "cpu"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    health = json.load(r)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stderr.read() if server.poll() else "timeout"
                time.sleep(0.3)
        assert tiny_run.name in health["models"]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", method="POST",
                                         data=json.dumps({"model": tiny_run.name, "prompt": "All:", "max_tokens": 5,
                                                          "seed": 0}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            assert len(json.load(r)["choices"]) == 1
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_on_a_folder_without_runs_is_one_line(capsys, tmp_path):
    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not a run directory" in err


def test_a_request_timeout_that_is_not_positive_is_one_line(capsys, tiny_run):
    assert main(["serve", str(tiny_run), "--request-timeout", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--request-timeout must be a positive" in err


def test_an_empty_api_key_is_refused_not_served_without_one(capsys, tiny_run, monkeypatch):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(app))  # never listen in a test
    assert main(["serve", str(tiny_run), "--api-key", ""]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--api-key is empty" in err and not served


def test_an_address_in_use_or_unknown_is_one_line(capsys, tiny_run, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)  # never listen in a test
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(tiny_run), "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"cannot listen on 127.0.0.1:{port}" in err, err
    assert main(["serve", str(tiny_run), "--host", "no-such-host.invalid"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot listen on no-such-host.invalid" in err, err


@pytest.fixture
def started(monkeypatch):
    """`lmforge serve` up to `uvicorn.run`, which records what it was given instead of serving."""
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(app=app, **options))
    monkeypatch.setattr(serve, "check_address", lambda host, port: None)  # port 1 needs root; 8000 may be taken
    return seen


def test_serve_hands_uvicorn_localhost_the_port_the_key_and_the_timeout(started, tiny_run, tmp_path):
    from fastapi.testclient import TestClient

    (tmp_path / "notes").mkdir()  # a folder that is not a run is not served
    (tmp_path / "tiny").symlink_to(tiny_run, target_is_directory=True)
    assert main(["serve", str(tmp_path), "--device", "cpu", "--api-key", "k", "--request-timeout", "0.001"]) == 0
    assert (started["host"], started["port"]) == ("127.0.0.1", 8000)
    client = TestClient(started["app"])
    assert client.get("/health").json()["models"] == ["tiny"]
    assert client.get("/v1/models").status_code == 401
    key = {"Authorization": "Bearer k"}
    reply = client.post("/v1/completions", json={"prompt": "All:", "max_tokens": 2000, "n": 4}, headers=key)
    assert reply.status_code == 504 and reply.json()["error"]["code"] == "timeout"


@pytest.mark.parametrize("port, ok", [(0, False), (1, True), (65535, True), (65536, False)])
def test_the_port_is_checked_before_anything_loads(started, capsys, tiny_run, port, ok):
    assert main(["serve", str(tiny_run), "--device", "cpu", "--port", str(port)]) == (0 if ok else 2)
    assert (started.get("port") == port) == ok
    assert ok or "--port must be between 1 and 65535" in capsys.readouterr().err
