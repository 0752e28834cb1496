"""Tiny trained runs (a Transformer, a language model) for the API, server, page and tree tests."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

DATES = ["9 April 1974", "1. Dez. 1960", "tuesday, 3 march 2015", "12/05/99", "7 june 2001"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(*args: str, timeout: float = 60.0):
    """`atento serve ARGS --port FREE` on 127.0.0.1 in a subprocess; yields its base URL and
    stops it (terminate, then kill) at the end."""
    port = free_port()
    cmd = [sys.executable, "-m", "atento", "serve", *args, "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"atento serve exited {proc.returncode}: {proc.stderr.read()}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def post_json(url: str, body) -> tuple[int, dict]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
