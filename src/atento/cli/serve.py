"""`atento serve RUN_DIR [RUN_DIR...] [--host 127.0.0.1] [--port 8000]`: the HTTP API and page.

POST /v1/translate, GET /health, GET /v1/models, the page at /, OpenAPI docs at /docs.
Requests from all clients are batched per model (--max-batch-tokens, --max-wait-ms);
--no-batching decodes one request at a time. Binds the loopback interface unless --host says
otherwise (there is no authentication: expose it only behind something that has some).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket

from atento.errors import AtentoError, warn
from atento.options import PRECISION_CHOICES as PRECISIONS_CHOICES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve runs over HTTP: JSON API, attention page, beam trees")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories to serve")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--max-batch-tokens", type=int, default=2048, help="source tokens per batch")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="wait for company (ms)")
    p.add_argument("--no-batching", action="store_true", help="decode one request at a time")
    p.add_argument("--max-sentences", type=int, default=32, help="sentences per request")
    p.add_argument("--max-chars", type=int, default=1000, help="characters per sentence")
    p.add_argument("--max-queue", type=int, default=256, help="sentences waiting per model")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    p.add_argument("--threads", type=int, help="torch threads (default: the run's setting)")
    p.add_argument(
        "--precision", choices=PRECISIONS_CHOICES,
        help="decoding precision (default: each run's; fp32 keeps memory flat, see README)",
    )  # fmt: skip
    p.add_argument(
        "--kernel-cache", type=int, default=64,
        help="CPU: oneDNN kernel-cache cap (batches of many shapes; 0 = oneDNN's default)",
    )  # fmt: skip
    p.set_defaults(run=run)


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise AtentoError(f"--port must be between 0 and 65535, got {args.port}")
    for name in ("max_batch_tokens", "max_sentences", "max_chars", "max_queue"):
        if getattr(args, name) < 1:
            raise AtentoError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_wait_ms < 0 or not args.timeout > 0:
        raise AtentoError("--max-wait-ms must be >= 0 and --timeout > 0")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build(args: argparse.Namespace):
    """The app for parsed arguments (the runs loaded, limits set); tests call this too."""
    import torch

    from atento.api import Model
    from atento.cli.common import open_run
    from atento.runtime import cap_kernel_cache
    from atento.serve import Limits, create_app

    _check(args)
    models, names = [], set()
    for run_dir in args.run_dirs:
        loaded = open_run(run_dir)
        if args.precision:  # every operation of the run decodes in it
            loaded.placement = loaded.placement.with_precision(args.precision, key="--precision")
        model = Model(loaded)
        if model.name in names:
            raise AtentoError(f"two runs are named {model.name!r}: serve runs with distinct names")
        names.add(model.name)
        models.append(model)
    if args.kernel_cache > 0:  # before any kernel runs; an explicit environment setting wins
        cap_kernel_cache(args.kernel_cache)
    if args.threads:
        torch.set_num_threads(args.threads)
    limits = Limits(
        max_sentences=args.max_sentences, max_chars=args.max_chars, max_queue=args.max_queue,
        timeout_s=args.timeout, max_batch_tokens=args.max_batch_tokens,
        max_wait_ms=args.max_wait_ms, batching=not args.no_batching,
    )  # fmt: skip
    return create_app(models, limits)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port for the server (bound before the runs load, and handed
    to uvicorn: nothing can take the port in between); one-line errors for a port in use, a
    privileged port and a host that is not this machine's."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise AtentoError(f"--host {host}: not an address or a known name ({reason})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is fine
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AtentoError(
                f"port {port} on {host} is already in use (another server?): choose another --port"
            ) from None
        hint = " (ports below 1024 need privileges)" if exc.errno == errno.EACCES else ""
        raise AtentoError(f"cannot serve on {host}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


def run(args: argparse.Namespace) -> int:
    import uvicorn

    _check(args)
    sock = bind(args.host, args.port)
    try:
        app = build(args)
        port = sock.getsockname()[1]  # --port 0: the one the system chose
        if not _is_loopback(args.host):
            warn(f"serving on {args.host}: reachable from other machines, with no authentication")
        names = ", ".join(r for r in args.run_dirs)
        mode = (
            "no batching" if args.no_batching else f"batches of <= {args.max_batch_tokens} tokens"
        )
        warn(f"serving {names} at http://{args.host}:{port}/ ({mode}; API docs at /docs)")
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
    return 0
