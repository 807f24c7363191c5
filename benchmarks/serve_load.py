"""Load on `lmforge serve`: many concurrent clients against one, on 127.0.0.1, bounded in count and time.

Trains a throwaway run of the default preset's model (a few steps: speed does not
depend on what the weights learned), starts `lmforge serve` on a free local port, then
sends the same completion request (`--max-tokens` tokens, temperature 0.8, seed i for
request i; with `--distinct-prompts`, each request its own prompt) from one client, and
from `--clients` concurrent clients (`--requests` in all). Prints errors, p50/p95/p99
latency, aggregate generated tokens/s and its ratio against one client, the server's
resident memory before the load, at its peak and after it, and the latency of one
request through the idle server beside the same request decoded in this process by
`Run.sample` (the plain, unbatched decode loop, no HTTP), taken in turns.

Bounded: at most 64 clients and 2,000 requests, and no request starts after
`--budget` seconds (those not sent are counted and reported, never silently dropped).
Only 127.0.0.1 is ever contacted.

    python benchmarks/serve_load.py --clients 16 --requests 400 --max-tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROMPT = "Fellow-Citizens of the Senate"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakRss:
    """The highest resident memory of a process, sampled every 20 ms while in use."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> PeakRss:
        self.peak = rss_mb(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


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


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] if sorted_values else float("nan")


def load(port: int, body: dict, clients: int, requests: int, timeout: float, budget: float,
         distinct: bool = False) -> dict:
    """`requests` requests from `clients` threads; request i has seed i (and with `distinct`, a prompt of its own)."""
    start = time.perf_counter()

    def one(i: int) -> tuple[float, int, bool] | None:
        if time.perf_counter() - start > budget:
            return None  # past the time budget: not sent
        prompt = body["prompt"]
        if distinct:  # the last three characters made request i's number: no two equal, every one as long
            prompt = f"{prompt[:-3]}{i % 1000:03d}"
        return request(port, {**body, "prompt": prompt, "seed": i}, timeout)

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    sent = [r for r in results if r is not None]
    latencies = sorted(r[0] for r in sent)
    return {"clients": clients, "requests": len(sent), "not_sent": len(results) - len(sent),
            "errors": sum(not r[2] for r in sent), "p50_s": percentile(latencies, 0.5),
            "p95_s": percentile(latencies, 0.95), "p99_s": percentile(latencies, 0.99),
            "tokens": sum(r[1] for r in sent), "tokens_per_s": sum(r[1] for r in sent) / wall, "wall_s": wall}


def paired_latency(port: int, run_dir: Path, body: dict, repeats: int, threads: int) -> tuple[float, float]:
    """Median seconds of one request through the idle server and of the same request by `Run.sample` in this
    process (the plain decode loop, no HTTP, no batcher), taken in turns so both see the same machine."""
    import torch

    import lmforge

    torch.set_num_threads(threads)
    run = lmforge.load(run_dir, device="cpu")
    options = {k: v for k, v in body.items() if k in ("temperature",)}
    run.sample(body["prompt"], body["max_tokens"], seed=0, **options)  # warm-up
    served, alone = [], []
    for i in range(repeats):
        served.append(request(port, {**body, "seed": i}, 60)[0])
        start = time.perf_counter()
        run.sample(body["prompt"], body["max_tokens"], seed=i, **options)
        alone.append(time.perf_counter() - start)
    return sorted(served)[repeats // 2], sorted(alone)[repeats // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--single-requests", type=int, default=40, help="requests of the one-client baseline")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    ap.add_argument("--budget", type=float, default=600.0, help="seconds after which a load sends no new request")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads of the server and of Run.sample here (OMP_NUM_THREADS; on a busy 2-core "
                         "machine a second thread that waits for its sibling spins, and tails blow up)")
    ap.add_argument("--run", type=Path, help="serve this run directory instead of training a throwaway one")
    ap.add_argument("--distinct-prompts", action="store_true",
                    help="request i ends its prompt with its number (i mod 1000, as three digits), so no two "
                         "prompts are equal (by default all send one prompt, and the server computes equal prompts "
                         "that arrive together once)")
    args = ap.parse_args()
    if not (1 <= args.clients <= 64 and 1 <= args.requests <= 2000 and 1 <= args.single_requests <= 2000):
        sys.exit("serve_load: keep --clients in 1..64 and --requests in 1..2000 (a bounded load)")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or Path(tmp) / "default"
        if args.run is None:
            subprocess.run([sys.executable, "-m", "lmforge", "train", "--out", str(run), "--train.max_steps", "20",
                            "--train.eval_interval", "20", "--train.eval_tokens", "2048", "--train.progress",
                            "false"], check=True, capture_output=True, env=env)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "lmforge", "serve", str(run), "--port", str(port),
                                   "--device", "cpu"], stderr=subprocess.DEVNULL, env=env)
        try:
            deadline = time.time() + 120
            while request(port, {"prompt": "The", "max_tokens": 1}, 5)[2] is False:
                if time.time() > deadline or server.poll() is not None:
                    sys.exit("serve_load: the server did not start")
                time.sleep(0.5)
            body = {"prompt": PROMPT, "max_tokens": args.max_tokens, "temperature": 0.8}
            load(port, body, 1, 5, args.timeout, args.budget)  # warm-up: first calls allocate pools and caches
            time.sleep(1.0)
            before = rss_mb(server.pid)
            with PeakRss(server.pid) as peak:
                one = load(port, body, 1, args.single_requests, args.timeout, args.budget, args.distinct_prompts)
                many = load(port, body, args.clients, args.requests, args.timeout, args.budget, args.distinct_prompts)
            time.sleep(2.0)  # the server trims its heap once idle for half a second
            after = rss_mb(server.pid)
            served, alone = paired_latency(port, run, body, 20, args.threads)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"threads: {args.threads} (server OMP_NUM_THREADS); {args.max_tokens} tokens per request; "
          f"{'a prompt of its own per request' if args.distinct_prompts else 'one prompt for all requests'}")
    print("| clients | requests | not sent | errors | p50 s | p95 s | p99 s | generated tokens/s | × one client |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in (one, many):
        print(f"| {row['clients']} | {row['requests']} | {row['not_sent']} | {row['errors']} | {row['p50_s']:.3f} | "
              f"{row['p95_s']:.3f} | {row['p99_s']:.3f} | {row['tokens_per_s']:.0f} | "
              f"{row['tokens_per_s'] / one['tokens_per_s']:.2f} |")
    errors = one["errors"] + many["errors"]
    print(f"errors: {errors} ({'ok' if errors == 0 else 'FAILED'})")
    print(f"one request, in turns, median of 20: through the idle server {served * 1000:.1f} ms; by Run.sample in "
          f"this process (unbatched, no HTTP) {alone * 1000:.1f} ms ({served / alone:.2f}x)")
    change = (after - before) / before
    print(f"server RSS: {before:.0f} MB before the load, {peak.peak:.0f} MB at peak, {after:.0f} MB after "
          f"({change:+.1%}: {'within' if abs(change) <= 0.10 else 'NOT within'} 10% of before)")


if __name__ == "__main__":
    main()
