"""`lmforge serve`: serve a run, or a folder of runs, over an OpenAI-compatible HTTP API."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from lmforge.errors import LmforgeError

HELP = "serve runs over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)"
DESCRIPTION = ("Serve a run directory, or every run in a folder, on 127.0.0.1 (unless --host says otherwise): "
               "GET /health, GET /v1/models, POST /v1/completions and, for runs made by `lmforge finetune`, "
               "POST /v1/chat/completions (with \"stream\": true, Server-Sent Events). Each run is a model named by "
               "its folder; concurrent requests are decoded together in one running batch.")
SHARED = ("device",)
EXAMPLES = """examples:
  lmforge serve runs/demo                                  # http://127.0.0.1:8000/v1
  lmforge serve runs/ --port 8080 --api-key secret         # every run in runs/, requests need the key
  lmforge serve runs/demo --request-timeout 60             # a request still decoding after 60 s gets a 504
  curl http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' \\
       -d '{"prompt": "Fellow-Citizens", "max_tokens": 40, "temperature": 0.8, "seed": 1}'"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="a run directory, or a folder whose subfolders are runs")
    p.add_argument("--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
    p.add_argument("--api-key", metavar="KEY", help="require 'Authorization: Bearer KEY' on every /v1 request")
    p.add_argument("--request-timeout", type=float, metavar="S",
                   help="end a request still decoding after S seconds with a 504 (default: no limit)")


def find_runs(path: Path) -> list[Path]:
    """`path` itself when it is a run, else its subfolders that are runs, by name."""
    from lmforge.training.run_dir import CONFIG_FILE

    if (path / CONFIG_FILE).is_file():
        return [path]
    runs = sorted(p for p in path.iterdir() if (p / CONFIG_FILE).is_file()) if path.is_dir() else []
    if not runs:
        raise LmforgeError(f"'{path}' is not a run directory and holds none; pass a folder written by "
                           "`lmforge train --out`, or a folder of them")
    return runs


def check_address(host: str, port: int) -> None:
    """Bind host:port once and let it go, so an address in use or unknown is one line, not uvicorn's log after
    "serving ... on"."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
            s.bind(address)
    except OSError as exc:
        raise LmforgeError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port, or "
                           "--host with an address of this machine") from None


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import lmforge

    if not 0 < args.port < 65536:
        raise LmforgeError(f"--port must be between 1 and 65535, not {args.port}")
    if args.request_timeout is not None and not args.request_timeout > 0:
        raise LmforgeError(f"--request-timeout must be a positive number of seconds, not {args.request_timeout}")
    if args.api_key is not None and not args.api_key.strip():  # e.g. --api-key "$KEY" with KEY unset
        raise LmforgeError("--api-key is empty, so every request would be let in; pass a key, or leave --api-key out")
    import uvicorn

    from lmforge.serving.app import create_app

    runs = {path.name: lmforge.load(path, device=args.device) for path in find_runs(Path(args.path))}
    check_address(args.host, args.port)
    print(f"serving {', '.join(runs)} on http://{args.host}:{args.port}/v1", file=sys.stderr)
    uvicorn.run(create_app(runs, args.api_key, args.request_timeout), host=args.host, port=args.port, log_level="warning")
    return 0
