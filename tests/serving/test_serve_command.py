"""`lmforge serve` as a user starts it: a real process on 127.0.0.1, answering until it is stopped."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from lmforge.cli import main

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
