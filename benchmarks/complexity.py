"""Vaswani et al. 2017, Table 1, measured: per-layer cost of attention, recurrence, convolution.

    python benchmarks/complexity.py                    # default sweep, ~2-3 minutes on 2 cores
    python benchmarks/complexity.py --quick            # small sizes, ~20 seconds (smoke run)
    python benchmarks/complexity.py --png runs/complexity.png --json runs/complexity.json

Times the forward + backward pass of one layer of each kind on a batch of B sequences while the
sequence length n varies (width d fixed) and while d varies (n fixed), fits the growth exponent
of time in n and in d by least squares on log-log axes (over the three largest sizes of each
sweep, where fixed per-call overheads matter least), and prints the measured exponents beside
the paper's complexity per layer, number of sequential operations and maximum path length:

    layer                       per layer      sequential   max path length
    self-attention              O(n^2 d)       O(1)         O(1)
    recurrent (GRU)             O(n d^2)       O(n)         O(n)
    convolution (kernel k)      O(k n d^2)     O(1)         O(log_k n) (dilated; n/k contiguous)
    restricted self-attn (r)    O(r n d)       O(1)         O(n / r)

Self-attention is the scaled dot-product core of `atento.attention.MultiHeadAttention` (one
head, no projections, which would add an O(n d^2) term); restricted self-attention lets each
position attend to the r positions around it (a banded window computed in O(r n d) memory and
time, not a masked n x n matrix). A PNG of time against n is written beside the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from atento.attention import KVCache, MultiHeadAttention  # noqa: E402

THEORY = {  # name: (per layer, exponent n, exponent d, sequential ops, max path length)
    "self-attention": ("O(n^2 d)", 2, 1, "O(1)", "O(1)"),
    "recurrent (GRU)": ("O(n d^2)", 1, 2, "O(n)", "O(n)"),
    "convolution": ("O(k n d^2)", 1, 2, "O(1)", "O(log_k n)"),
    "restricted self-attention": ("O(r n d)", 1, 1, "O(1)", "O(n/r)"),
}


class SelfAttention(nn.Module):
    """softmax(Q K^T / sqrt(d)) V over all n positions: the MultiHeadAttention core, 1 head."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.core = MultiHeadAttention(d_model=d, heads=1)

    def forward(self, x: Tensor) -> Tensor:
        h = x.unsqueeze(1)  # (B, 1, n, d): one head
        out, _ = self.core.attend(h, KVCache(h, h), None, need_weights=False)
        return out.squeeze(1)


class RestrictedSelfAttention(nn.Module):
    """Each position attends to the r positions of a window centred on it: O(r n d)."""

    def __init__(self, r: int) -> None:
        super().__init__()
        self.r = r

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        left = self.r // 2
        padded = F.pad(x, (0, 0, left, self.r - 1 - left))  # (B, n + r - 1, d)
        windows = padded.unfold(1, self.r, 1)  # (B, n, d, r)
        valid = F.pad(x.new_ones(b, n), (left, self.r - 1 - left)).unfold(1, self.r, 1) > 0
        energies = torch.einsum("bnd,bndr->bnr", x, windows) / d**0.5  # (B, n, r)
        weights = torch.softmax(energies.masked_fill(~valid, float("-inf")), dim=-1)
        return torch.einsum("bnr,bndr->bnd", weights, windows)  # (B, n, d)


class Recurrent(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(d, d, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]


class Convolution(nn.Module):
    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d, d, k, padding=k // 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, d, n) inside


def make_layer(name: str, d: int, k: int, r: int) -> nn.Module:
    return {
        "self-attention": lambda: SelfAttention(d),
        "recurrent (GRU)": lambda: Recurrent(d),
        "convolution": lambda: Convolution(d, k),
        "restricted self-attention": lambda: RestrictedSelfAttention(r),
    }[name]()


def time_layer(layer: nn.Module, batch: int, n: int, d: int, min_seconds: float) -> float:
    """Best-of seconds for one forward + backward pass on x (B, n, d)."""
    x = torch.randn(batch, n, d, requires_grad=True)

    def once() -> float:
        start = time.perf_counter()
        layer(x).sum().backward()
        return time.perf_counter() - start

    once()  # warm-up
    times, spent = [], 0.0
    while spent < min_seconds or len(times) < 5:
        times.append(once())
        spent += times[-1]
        if len(times) >= 20:
            break
    return min(times)


def fit_exponent(sizes: list[int], seconds: list[float], top: int = 3) -> float:
    """Slope of log(time) against log(size) over the `top` largest sizes (least squares)."""
    xs, ys = np.log(sizes[-top:]), np.log(seconds[-top:])
    return float(np.polyfit(xs, ys, 1)[0])


def sweep(
    args: argparse.Namespace, log: Callable[[str], None]
) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {}
    for name in THEORY:
        torch.manual_seed(0)
        by_n = [
            time_layer(make_layer(name, args.d, args.k, args.r), args.batch, n, args.d, args.min_s)
            for n in args.ns
        ]
        by_d = [
            time_layer(make_layer(name, d, args.k, args.r), args.batch, args.n, d, args.min_s)
            for d in args.ds
        ]
        results[name] = {"by_n": by_n, "by_d": by_d}
        log(f"  {name}: n sweep {[f'{t * 1e3:.1f}' for t in by_n]} ms, "
            f"d sweep {[f'{t * 1e3:.1f}' for t in by_d]} ms")  # fmt: skip
    return results


def table(results: dict, args: argparse.Namespace) -> tuple[str, list[dict]]:
    rows, lines = (
        [],
        [
            "| layer | per layer | sequential ops | max path length | exp. in n: theory / measured "
            "| exp. in d: theory / measured |",
            "|---|---|---|---|---|---|",
        ],
    )
    for name, (cost, en, ed, seq, path) in THEORY.items():
        mn = fit_exponent(args.ns, results[name]["by_n"])
        md = fit_exponent(args.ds, results[name]["by_d"])
        label = name + (f" (k={args.k})" if name == "convolution" else "")
        label += f" (r={args.r})" if name.startswith("restricted") else ""
        lines.append(f"| {label} | {cost} | {seq} | {path} | {en} / {mn:.2f} | {ed} / {md:.2f} |")
        rows.append({"layer": label, "per_layer": cost, "sequential": seq, "max_path": path,
                     "theory_n": en, "measured_n": round(mn, 3), "theory_d": ed,
                     "measured_d": round(md, 3), "seconds_by_n": results[name]["by_n"],
                     "seconds_by_d": results[name]["by_d"]})  # fmt: skip
    return "\n".join(lines), rows


def plot(results: dict, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, res in results.items():
        ax.loglog(args.ns, [t * 1e3 for t in res["by_n"]], marker="o", label=name)
    ax.set_xlabel("sequence length n")
    ax.set_ylabel("forward + backward time (ms)")
    ax.set_title(f"one layer, d={args.d}, batch {args.batch}, k={args.k}, r={args.r}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--k", type=int, default=3, help="convolution kernel width")
    parser.add_argument("--r", type=int, default=16, help="restricted attention neighbourhood")
    parser.add_argument("--png", default="complexity.png", help="plot of time against n")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.ns, args.ds, args.n, args.d, args.min_s = (
            [32, 64, 128, 256],
            [32, 64, 128],
            128,
            64,
            0.02,
        )
    else:
        args.ns, args.ds = [128, 256, 512, 1024, 2048], [64, 128, 256, 512]
        args.n, args.d, args.min_s = 512, 128, 0.3
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    log(f"timing n in {args.ns} (d={args.d}) and d in {args.ds} (n={args.n}), batch {args.batch}, "
        f"{torch.get_num_threads()} threads")  # fmt: skip
    start = time.perf_counter()
    results = sweep(args, log)
    text, rows = table(results, args)
    print(text)
    plot(results, args, Path(args.png))
    log(f"plot: {args.png}; {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"ns": args.ns, "ds": args.ds, "rows": rows}))


if __name__ == "__main__":
    main()
