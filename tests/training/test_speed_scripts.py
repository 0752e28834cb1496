"""The training-speed scripts of issue 24 run (benchmarks/profile_train_step.py,
benchmarks/compile_ab.py with train_throughput.py), on the toy Transformer, in seconds."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from atento import kernels
from conftest import CONFIGS

ROOT = Path(__file__).resolve().parents[2]
TOY = str(CONFIGS / "toy_transformer.yaml")
FAST = ["runtime.threads=1", "runtime.precision=fp32", "data.n_train=64"]


def _script(name: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *argv],
                          capture_output=True, text=True, check=True, cwd=ROOT)  # fmt: skip


def test_profile_groups_operators_and_writes_the_table(tmp_path):
    out = tmp_path / "profile.txt"
    done = _script("profile_train_step.py", TOY, *FAST, "--warmup", "2", "--steps", "2",
                   "--out", str(out))  # fmt: skip
    text = out.read_text()
    assert text.strip() in done.stdout
    assert "self CPU time by group: " in text and "matrix products" in text
    groups = text.split("self CPU time by group: ")[1].splitlines()[0].split(", ")
    shares = {g.rsplit(" ", 1)[0]: float(g.rsplit(" ", 1)[1].rstrip("%")) for g in groups}
    optimizer = shares.pop("(of which the optimizer step)")
    assert sum(shares.values()) == pytest.approx(100.0, abs=0.5)
    assert 0 < optimizer < 100
    assert "aten::mm" in text or "aten::addmm" in text


def test_profile_group_names():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from profile_train_step import group
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert group("aten::addmm") == "matrix products"
    assert group("mkldnn::_linear_pointwise") == "matrix products"  # runtime.linear_kernel
    assert group("aten::_scaled_dot_product_flash_attention_for_cpu") == "fused attention"
    assert group("aten::mkldnn_rnn_layer") == "recurrent kernels"
    assert group("Torch-Compiled Region: 0/0") == "compiled regions"
    assert group("aten::add_") == "everything else"


def test_compile_ab_runs_rounds_and_tabulates(tmp_path):
    out = tmp_path / "ab.jsonl"
    done = _script("compile_ab.py", TOY, *FAST, "--variants", "off", "--rounds", "2",
                   "--seconds", "1", "--skip", "0", "--out", str(out))  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["variant"], r["round"]) for r in rows] == [("off", 1), ("off", 2)]
    assert all(r["compile"] == "off" and r["target_tokens_per_second"] > 0 for r in rows)
    assert "steady tok/s" in done.stdout and "\noff " in done.stdout


def test_attention_train_times_both_forms_at_each_length():
    done = _script("attention_train.py", "--lengths", "4", "16", "--tokens", "32",
                   "--repeats", "1", "--threads", "1")  # fmt: skip
    rows = [line for line in done.stdout.splitlines() if line.startswith("L ")]
    assert len(rows) == 4  # 2 lengths x (float32, bfloat16)
    assert all("fused" in r and "explicit" in r and "fused / explicit" in r for r in rows)
    assert rows[0].split()[1:4] == ["4", "B", "8"]  # B = tokens // L


def test_dropout_mask_times_both_forms_per_dtype():
    done = _script("dropout_mask.py", "--sizes", "1000", "4001", "--repeats", "1")
    rows = [line for line in done.stdout.splitlines() if ": draws " in line]
    assert len(rows) == 4  # 2 sizes x (float32, bfloat16)
    expect = [[n, d] for n in ("1,000", "4,001") for d in ("float32:", "bfloat16:")]
    assert [r.split()[:2] for r in rows] == expect
    assert all("compare to bool" in r and "dropout fwd+bwd" in r for r in rows)


def test_paired_ab_pairs_the_same_batches():
    done = _script("paired_ab.py", TOY, *FAST, "--seconds", "4", "--skip", "0",
                   "--b", "onednn", "--label", "toy")  # fmt: skip
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["label"] == "toy" and (row["a"], row["b"]) == ("plain", "onednn")
    assert row["lever"] == "linear_kernel"
    assert row["pairs"] > 0 and row["precision"] == "fp32"
    a, b = row["a_tokens_per_second"], row["b_tokens_per_second"]
    assert row["speedup_b_over_a"] == pytest.approx(b / a, rel=1e-2)  # the same tokens


def test_paired_ab_fuse_relu_lever():
    done = _script("paired_ab.py", TOY, *FAST, "--seconds", "3", "--skip", "0",
                   "--lever", "fuse_relu")  # fmt: skip
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert (row["lever"], row["a"], row["b"]) == ("fuse_relu", "off", "on")
    assert row["pairs"] > 0
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paired_ab.py"), TOY,
                          "--lever", "fuse_relu", "--b", "auto"],
                         capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert bad.returncode == 2 and "takes off, on, not 'auto'" in bad.stderr


def test_paired_ab_wgrad_lever():
    done = _script("paired_ab.py", TOY, *FAST, "runtime.linear_kernel=auto", "--seconds", "3",
                   "--skip", "0", "--lever", "wgrad")  # fmt: skip
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert (row["lever"], row["a"], row["b"]) == ("wgrad", "mm", "auto")
    assert row["pairs"] > 0


def test_step_memory_names_the_lines_that_save_tensors():
    rows = {}
    for fuse in ("on", "off"):
        done = _script("step_memory.py", TOY, *FAST, "--batches", "2", "--fuse-relu", fuse)
        rows[fuse] = json.loads(done.stdout.strip().splitlines()[-1])
        assert "saved for the backward on the largest batch" in done.stdout
        assert rows[fuse]["steps"] == 4 and rows[fuse]["peak_mib"] > 0
    # the toy Transformer has dropout after ReLU: the fused step saves less
    assert rows["on"]["saved_mib"] < rows["off"]["saved_mib"]


def test_train_throughput_leaves_kernel_measuring_steps_out(tmp_path, monkeypatch):
    """With `runtime.linear_kernel=auto` and no kernels.json, the steps that measure kernels
    are counted and left out of the steady-state window."""
    monkeypatch.setenv("ATENTO_CACHE", str(tmp_path))  # the toy corpus store and kernels.json
    monkeypatch.setenv("ATENTO_LINEAR_KERNEL", "auto")  # the suite's plain mode, overridden
    done = _script("train_throughput.py", TOY, *FAST, "train.batch_tokens=512", "--seconds", "4",
                   "--skip", "0")  # fmt: skip
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["kernel_measuring_steps"] >= 1 and row["kernel_measuring_seconds"] > 0
    assert row["updates"] > 0 and row["target_tokens_per_second"] > 0
    assert (tmp_path / "kernels.json").is_file()


@pytest.mark.skipif(not kernels._available(), reason="no oneDNN linear in this torch")
def test_weight_grad_forms_times_every_form():
    done = _script("weight_grad_forms.py", "--rows", "70", "--threads", "1", "--shapes", "24x40")
    rows = [line for line in done.stdout.splitlines() if line.startswith("70 x 24x40: ")]
    assert len(rows) == 1
    for name in ("forward mm", "forward onednn", "dgrad onednn", "wgrad mm", "wgrad dnn_t"):
        assert f"{name} " in rows[0]
    assert "GFLOP/s" in rows[0] and "cpu features" in done.stdout
