"""Load on `lmforge serve`: many concurrent clients against one, on 127.0.0.1, bounded in count and time.

Trains a throwaway run of the default preset's model (a few steps: speed does not
depend on what the weights learned), starts `lmforge serve` on a free local port, then
sends the same completion request (`--max-tokens` tokens, temperature 0.8) from one
client, and from `--clients` concurrent clients (`--requests` in all). Prints p50/p99
latency, errors, aggregate generated tokens/s and the ratio against one client, and
the server's resident memory before and after the load.

    python benchmarks/serve_load.py --clients 16 --requests 400 --max-tokens 32
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def request(port: int, body: dict, timeout: float) -> tuple[float, int, bool]:
    """(seconds, completion tokens, ok) of one request."""
    start = time.perf_counter()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            tokens = json.load(reply)["usage"]["completion_tokens"]
        return time.perf_counter() - start, tokens, True
    except OSError:
        return time.perf_counter() - start, 0, False


def load(port: int, body: dict, clients: int, requests: int, timeout: float) -> dict:
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda i: request(port, {**body, "seed": i}, timeout), range(requests)))
    wall = time.perf_counter() - start
    latencies = sorted(r[0] for r in results)
    return {"clients": clients, "requests": requests, "errors": sum(not r[2] for r in results),
            "p50_s": statistics.median(latencies), "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "tokens_per_s": sum(r[1] for r in results) / wall, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--single-requests", type=int, default=40, help="requests of the one-client baseline")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    args = ap.parse_args()
    if not (1 <= args.clients <= 64 and 1 <= args.requests <= 2000):
        sys.exit("serve_load: keep --clients in 1..64 and --requests in 1..2000 (a bounded load)")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "default"
        subprocess.run([sys.executable, "-m", "lmforge", "train", "--out", str(run), "--train.max_steps", "20",
                        "--train.eval_interval", "20", "--train.eval_tokens", "2048", "--train.progress", "false"],
                       check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "lmforge", "serve", str(run), "--port", str(port),
                                   "--device", "cpu"], stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 120
            while request(port, {"prompt": "The", "max_tokens": 1}, 5)[2] is False:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("serve_load: the server did not start")
                time.sleep(0.5)
            body = {"prompt": "Fellow-Citizens of the Senate", "max_tokens": args.max_tokens, "temperature": 0.8}
            before = rss_mb(server.pid)
            one = load(port, body, 1, args.single_requests, args.timeout)
            many = load(port, body, args.clients, args.requests, args.timeout)
            after = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print("| clients | requests | errors | p50 s | p99 s | generated tokens/s | × one client |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in (one, many):
        print(f"| {row['clients']} | {row['requests']} | {row['errors']} | {row['p50_s']:.3f} | {row['p99_s']:.3f} | "
              f"{row['tokens_per_s']:.0f} | {row['tokens_per_s'] / one['tokens_per_s']:.2f} |")
    print(f"server RSS: {before:.0f} MB before the load, {after:.0f} MB after ({(after - before) / before:+.1%})")


if __name__ == "__main__":
    main()
