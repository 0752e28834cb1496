"""Load test of `atento serve` on loopback: cross-request batching vs one request at a time.

    python benchmarks/serve_load.py runs/serve_t --src ../shared/data/multi30k/val.fr.gz \
        --clients 16 --seconds 30 --warmup 10 --out benchmarks/results/serve_load.json

For each mode (batched, then --no-batching) it starts `atento serve RUN --port FREE` on
127.0.0.1, runs `--clients` threads that each send one sentence per request (keep-alive, the
next request as soon as the answer arrives) for `--warmup` seconds, reads the server's RSS,
measures for `--seconds` (latencies, requests/s, errors) while sampling the RSS every
`--rss-every` seconds, and stops the server. A storm thread sends oversized and malformed
requests all along (too large a body, broken JSON, too many sentences, too long a sentence,
wrong types): each must get a 4xx while the good requests keep succeeding. Everything is
bounded (time, and --max-requests per mode), and the script stops its servers itself.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BAD_BODIES = [
    ("oversized body", json.dumps({"text": "x" * 400_000})),
    ("malformed JSON", '{"text": "un chat",'),
    ("too many sentences", json.dumps({"texts": ["un chat"] * 100})),
    ("sentence too long", json.dumps({"text": "un chat " * 200})),
    ("wrong type", json.dumps({"texts": ["un chat", 7]})),
    ("beam out of range", json.dumps({"text": "un chat", "beam": 0})),
    ("not an object", "[1, 2, 3]"),
    ("unknown field", json.dumps({"text": "un chat", "colour": "red"})),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def read_sentences(path: str, n: int) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[:n]


class Server:
    def __init__(self, run: str, extra: list[str]) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "atento", "serve", run, "--port", str(self.port), *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: {self.proc.stderr.read().decode()}")
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.3)

    def get(self, path: str) -> tuple[int, dict]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()


class Load:
    """Client threads sending good requests, and a storm of bad ones, until `stop`."""

    def __init__(self, port: int, sentences: list[str], clients: int, max_requests: int):
        self.port, self.sentences = port, sentences
        self.clients, self.max_requests = clients, max_requests
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.recording = False
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.storm: dict[str, dict[int, int]] = {}
        self.sent = 0

    def _post(self, conn: http.client.HTTPConnection, body: str) -> tuple[int, bytes]:
        conn.request("POST", "/v1/translate", body, {"content-type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()

    def client(self, i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        k = i
        while not self.stop.is_set():
            with self.lock:
                if self.sent >= self.max_requests:
                    return
                self.sent += 1
            body = json.dumps({"text": self.sentences[k % len(self.sentences)]})
            k += self.clients
            t0 = time.perf_counter()
            try:
                status, data = self._post(conn, body)
                ok = status == 200 and json.loads(data)["translations"][0]["text"] is not None
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                status, ok = repr(exc), False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            dt = time.perf_counter() - t0
            with self.lock:
                if self.recording:
                    if ok:
                        self.latencies.append(dt)
                    else:
                        self.errors.append(str(status))
        conn.close()

    def storm_thread(self) -> None:
        k = 0
        while not self.stop.wait(0.05):
            name, body = BAD_BODIES[k % len(BAD_BODIES)]
            k += 1
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                status, _ = self._post(conn, body)
            except (OSError, http.client.HTTPException) as exc:
                status = repr(exc)
            finally:
                conn.close()
            with self.lock:
                counts = self.storm.setdefault(name, {})
                counts[status] = counts.get(status, 0) + 1


def run_mode(args, sentences: list[str], mode: str) -> dict:
    extra = ["--no-batching"] if mode == "single" else []
    extra += ["--max-wait-ms", str(args.max_wait_ms), "--max-queue", "1024"]
    server = Server(args.run, extra)
    load = Load(server.port, sentences, args.clients, args.max_requests)
    threads = [threading.Thread(target=load.client, args=(i,)) for i in range(args.clients)]
    threads.append(threading.Thread(target=load.storm_thread))
    try:
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        rss_warm = rss_mb(server.proc.pid)
        health0 = server.get("/health")[1]
        with load.lock:
            load.recording = True
        t0 = time.perf_counter()
        curve = [(0.0, round(rss_warm, 1))]  # the server's RSS every --rss-every seconds
        while (left := args.seconds - (time.perf_counter() - t0)) > 0:
            time.sleep(min(args.rss_every, left))
            curve.append((round(time.perf_counter() - t0, 1), round(rss_mb(server.proc.pid), 1)))
        with load.lock:
            load.recording = False
            elapsed = time.perf_counter() - t0
        rss_end = rss_mb(server.proc.pid)
        health1 = server.get("/health")[1]
        good_after = server.get("/v1/models")[0]
    finally:
        load.stop.set()
        for t in threads:
            t.join(90)
        server.stop()
    lat = sorted(load.latencies)
    batches = health1["batches"] - health0["batches"]
    sentences_done = health1["sentences"] - health0["sentences"]
    storm_statuses = [s for counts in load.storm.values() for s in counts]
    return {
        "mode": mode,
        "seconds": round(elapsed, 1),
        "requests_ok": len(lat),
        "errors": len(load.errors),
        "error_samples": load.errors[:5],
        "requests_per_s": round(len(lat) / elapsed, 2),
        "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
        "p90_ms": percentile_ms(lat, 0.90),
        "p99_ms": percentile_ms(lat, 0.99),
        "mean_batch_sentences": round(sentences_done / batches, 2) if batches else None,
        "rss_after_warmup_mb": round(rss_warm, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_growth_pct": round(100 * (rss_end - rss_warm) / rss_warm, 2),
        "rss_curve_mb": curve,
        "storm": {name: {str(k): v for k, v in c.items()} for name, c in load.storm.items()},
        "storm_all_4xx": all(isinstance(s, int) and 400 <= s < 500 for s in storm_statuses),
        "server_answered_after_storm": good_after == 200,
    }


def percentile_ms(sorted_s: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not sorted_s:
        return None
    return round(1000 * sorted_s[max(0, math.ceil(q * len(sorted_s)) - 1)], 1)


def machine() -> dict:
    info = {"python": platform.python_version(), "cores": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                info["cpu"] = value.strip()
            if key.strip() == "Flags":
                flags = value.split()
                info["flags"] = [f for f in flags if f.startswith(("avx", "amx", "fma"))]
    except OSError:
        pass
    info["loadavg_before"] = os.getloadavg()
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="run directory to serve")
    p.add_argument("--src", required=True, help="source sentences (plain or .gz), one a line")
    p.add_argument("--sentences", type=int, default=500, help="how many of them to cycle")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0, help="measured time per mode")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds before the RSS baseline")
    p.add_argument("--rss-every", type=float, default=5.0, help="seconds between RSS samples")
    p.add_argument("--max-requests", type=int, default=100_000, help="per mode, a hard bound")
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--modes", default="batched,single")
    p.add_argument("--out", help="JSON results file")
    p.add_argument("--note", default="", help="a remark stored with the results")
    args = p.parse_args()
    if not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 120 or not 1 <= args.clients <= 64:
        raise SystemExit("keep it bounded: --seconds <= 600, --warmup <= 120, --clients <= 64")
    sentences = read_sentences(args.src, args.sentences)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": machine(),
        "clients": args.clients,
        "note": args.note,
        "modes": [],
    }
    for mode in args.modes.split(","):
        r = run_mode(args, sentences, mode)
        result["modes"].append(r)
        print(json.dumps(r), flush=True)
    modes = {m["mode"]: m for m in result["modes"]}
    if "batched" in modes and "single" in modes and modes["single"]["requests_per_s"]:
        result["batched_over_single"] = round(
            modes["batched"]["requests_per_s"] / modes["single"]["requests_per_s"], 2
        )
        print(f"batched / single requests/s: {result['batched_over_single']}x")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
