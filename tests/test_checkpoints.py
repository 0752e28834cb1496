"""Checkpoint storage: round trips, atomic saves under kills, corruption, legacy files, and
pickles that must never run."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import atento.checkpoints as ck
from atento.checkpoints import (
    BEST,
    FORMAT,
    LAST,
    LEGACY_BEST,
    LEGACY_LAST,
    Checkpoint,
    capture_rng,
    find_checkpoint,
    load_checkpoint,
    remove_stale,
    restore_rng,
    save_checkpoint,
)
from atento.data.tokenizers import CharTokenizer, build_tokenizer, load_tokenizer
from atento.errors import AtentoError

FIXTURES = Path(__file__).parent / "fixtures"
TEXTS = [f"le {a} {c} mange une pomme" for a in ("chat", "chien", "boeuf") for c in "abcdefg"]
CONFIG = {"model": {"arch": "rnn", "hidden_size": 8}, "train": {"lr": 0.5, "bf16": False}}


class Tied(nn.Module):
    """Output projection tied to the embedding, plus a buffer."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(11, 4)
        self.out = nn.Linear(4, 11)
        self.out.weight = self.emb.weight
        self.register_buffer("steps", torch.tensor([seed]))


class Planted:
    """A pickle that creates `marker` when unpickled by anything that runs pickle code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.fixture(scope="module")
def sp_tok(tmp_path_factory):
    return build_tokenizer(
        "sentencepiece", TEXTS, vocab_size=40, run_dir=tmp_path_factory.mktemp("sp"), name="sp"
    )


def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(AtentoError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def _full(sp_tok, seed: int = 0) -> tuple[Checkpoint, Tied, torch.optim.Optimizer]:
    model = Tied(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    model.out(model.emb(torch.tensor([1, 2]))).sum().backward()
    opt.step()
    sched.step()
    averaged = {k: v * 0.5 for k, v in model.state_dict().items()}
    training = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": capture_rng(), "ema_updates": 7}  # fmt: skip
    progress = {"step": 5 + seed, "epoch": 1, "best_bleu": 12.5, "elapsed": 0.1 + 0.2}
    return (
        Checkpoint(config=CONFIG, tokenizers={"src": sp_tok, "tgt": CharTokenizer("abc é")},
                   model=averaged, step=5 + seed, progress=progress,
                   train_model=model.state_dict(), training=training),
        model, opt,
    )  # fmt: skip


# ---------------------------------------------------------------- round trips
def test_round_trip_everything(tmp_path, sp_tok) -> None:
    saved, model, opt = _full(sp_tok)
    save_checkpoint(saved, tmp_path / LAST)
    got = load_checkpoint(tmp_path / LAST, training=True)
    assert (got.format, got.path, got.step) == (FORMAT, tmp_path / LAST, 5)
    (tmp_path / "plain").mkdir()  # the checkpoint directory gets the usual permissions
    assert (tmp_path / LAST).stat().st_mode == (tmp_path / "plain").stat().st_mode
    assert got.config == CONFIG and got.progress == saved.progress
    _same(got.model, saved.model)
    _same(got.train_model, model.state_dict())
    for role, tok in saved.tokenizers.items():
        assert type(got.tokenizers[role]) is type(tok)
        for text in [*TEXTS[:3], "é ab zz ?"]:
            assert got.tokenizers[role].encode(text) == tok.encode(text)
    # tied weights: one stored copy, every key back, and a strict load_state_dict accepts them
    assert got.train_model["out.weight"] is got.train_model["emb.weight"]
    assert not torch.equal(got.model["out.bias"], got.train_model["out.bias"])
    fresh = Tied(seed=9)
    fresh.load_state_dict(got.train_model)
    _same(fresh.state_dict(), model.state_dict())
    assert fresh.out.weight is fresh.emb.weight
    # the resuming state: optimiser moments load into a new optimiser, counters come back
    assert got.training["ema_updates"] == 7
    new_opt = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    new_opt.load_state_dict(got.training["optimizer"])
    _same(new_opt.state_dict()["state"][0], opt.state_dict()["state"][0])
    assert got.training["scheduler"] == saved.training["scheduler"]


def test_the_training_state_streams_to_disk(tmp_path, sp_tok) -> None:
    """A 32 MB optimizer state is written without a whole copy of it in memory (it once went
    through a BytesIO and its `getvalue()`, which glibc then kept in the heap: +144 MiB RSS
    after a run's first save): Python allocates a small fraction of it while saving, and the
    files' sizes and hashes in meta.json are those of what is on disk."""
    import tracemalloc

    saved = _full(sp_tok)[0]
    saved.training["big"] = torch.randn(8 << 20)  # 32 MB, in torch's allocator, not Python's
    tracemalloc.start()
    try:
        save_checkpoint(saved, tmp_path / LAST)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"saving allocated {peak / 2**20:.1f} MiB in Python"
    meta = json.loads((tmp_path / LAST / "meta.json").read_text())
    for name, entry in meta["files"].items():
        blob = (tmp_path / LAST / name).read_bytes()
        assert entry == {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    got = load_checkpoint(tmp_path / LAST, training=True)
    assert torch.equal(got.training["big"], saved.training["big"])


def test_optional_parts_absent_and_skipped(tmp_path, sp_tok) -> None:
    tok = CharTokenizer("xyz")
    save_checkpoint(Checkpoint(config={}, tokenizers={"tgt": tok}, model={}), tmp_path / BEST)
    assert sorted(p.name for p in (tmp_path / BEST).iterdir()) == [
        "meta.json",
        "model.safetensors",
        "tgt.json",
    ]
    got = load_checkpoint(tmp_path / BEST, training=True)
    assert (got.model, got.train_model, got.training, got.progress) == ({}, None, None, None)
    assert got.tokenizers["tgt"].encode("zyx") == tok.encode("zyx")
    save_checkpoint(_full(sp_tok)[0], tmp_path / LAST)
    quick = load_checkpoint(tmp_path / LAST)  # training=False: resuming state not read
    assert quick.train_model is None and quick.training is None


def test_shared_tokenizer_and_shared_storage(tmp_path) -> None:
    tok = CharTokenizer("abc")
    base = torch.arange(12.0).reshape(3, 4)
    state = {"a": base[:2], "b": base[1:], "t": base.t(), "same": base, "again": base}
    save_checkpoint(Checkpoint(config={}, tokenizers={"src": tok, "tgt": tok}, model=state),
                    tmp_path / "c")  # fmt: skip
    assert not (tmp_path / "c" / "tgt.json").exists()
    got = load_checkpoint(tmp_path / "c")
    assert got.tokenizers["src"] is got.tokenizers["tgt"]  # a joint vocabulary stays joint
    _same(got.model, state)


def test_bad_inputs_rejected_on_save(tmp_path) -> None:
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(Checkpoint(config={"x": torch.ones(1)}, tokenizers={}, model={}),
                        tmp_path / "c")  # fmt: skip
    with pytest.raises(ValueError, match="role"):
        save_checkpoint(Checkpoint(config={}, tokenizers={"meta": CharTokenizer("a")}, model={}),
                        tmp_path / "c")  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


# ---------------------------------------------------------------- atomic saves
class Killed(BaseException):
    """Stands for SIGKILL: no except/finally cleanup of the save runs after it."""


def _kill_at(monkeypatch, n: int) -> list[str]:
    """Make the n-th fsync / rename / rmtree of the next save 'kill' the process."""
    seen: list[str] = []
    for owner, name in [(os, "fsync"), (os, "replace"), (shutil, "rmtree")]:
        real = getattr(owner, name)

        def step(*args, _real=real, _name=name, **kwargs):
            seen.append(_name)
            if len(seen) == n:
                raise Killed
            return _real(*args, **kwargs)

        monkeypatch.setattr(owner, name, step)
    return seen


def _weights(value: float) -> Checkpoint:
    tok = CharTokenizer("ab")
    weights = {"w": torch.full((3,), value)}
    return Checkpoint(config={"v": value}, tokenizers={"src": tok}, model=weights,
                      training={"x": torch.ones(2)})  # fmt: skip


@pytest.mark.parametrize("previous", [True, False])
def test_kill_at_every_step_of_a_save_leaves_a_loadable_checkpoint(tmp_path, monkeypatch, previous):
    events = _kill_at(monkeypatch, 0)
    save_checkpoint(_weights(0.0), tmp_path / "probe" / LAST)
    monkeypatch.undo()
    assert events.count("replace") == 1 and events.count("fsync") >= 4
    total = len(events) + 2 * previous  # over an old checkpoint: one more rename, one delete
    outcomes = set()
    for n in range(1, total + 1):
        run = tmp_path / f"kill{n}"
        run.mkdir()
        if previous:
            save_checkpoint(_weights(1.0), run / LAST)
        seen = _kill_at(monkeypatch, n)
        with pytest.raises(Killed):
            save_checkpoint(_weights(2.0), run / LAST)
        monkeypatch.undo()
        committed = seen[:-1].count("replace") == 1 + previous  # killed after the last rename
        expected = 2.0 if committed else 1.0 if previous else None
        if expected is None:
            _error(find_checkpoint, run, "last")
        else:
            got = load_checkpoint(find_checkpoint(run, "last"), training=True)
            assert got.config == {"v": expected}, n
            assert load_checkpoint(run / LAST).config == {"v": expected}
        outcomes.add(expected if (run / LAST).exists() or expected is None else "fallback")
        remove_stale(run)
        left = sorted(p.name for p in run.iterdir())
        if (run / LAST).exists() or expected is None:
            assert left == ([LAST] if (run / LAST).exists() else []), (n, left)
        else:  # killed between the renames: the old checkpoint is all there is
            assert len(left) == 1 and left[0].startswith(f"{LAST}.old-"), (n, left)
        save_checkpoint(_weights(3.0), run / LAST)  # the next save recovers
        assert sorted(p.name for p in run.iterdir()) == [LAST]
        assert load_checkpoint(run / LAST).config == {"v": 3.0}
    assert outcomes == ({1.0, "fallback", 2.0} if previous else {None, 2.0})


def test_remove_stale(tmp_path) -> None:
    save_checkpoint(_weights(1.0), tmp_path / LAST)
    save_checkpoint(_weights(1.0), tmp_path / f"{BEST}.old-1234")  # its main dir is missing
    stale = [tmp_path / f"{LAST}.tmp-ab_9", tmp_path / f"{LAST}.old-99", tmp_path / f"{BEST}.tmp-x"]
    for p in stale:
        p.mkdir()
    (tmp_path / "checkpoint_last.pt.k2j.tmp").write_bytes(b"half")  # the previous release's
    (tmp_path / "notes.tmp").write_text("mine")
    (tmp_path / "data.tmp-1").mkdir()  # not a checkpoint's: left alone
    removed = remove_stale(tmp_path)
    assert sorted(removed) == sorted([*stale, tmp_path / "checkpoint_last.pt.k2j.tmp"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{BEST}.old-1234",
        LAST,
        "data.tmp-1",
        "notes.tmp",
    ]
    assert remove_stale(tmp_path / "nowhere") == []


# ---------------------------------------------------------------- damaged checkpoints
def _flip(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x55
    path.write_bytes(bytes(blob))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


@pytest.mark.parametrize(
    "name, damage, words",
    [("model.safetensors", _truncate, "truncated"), ("model.safetensors", _flip, "sha256"),
     ("train_model.safetensors", _flip, "sha256"), ("training.pt", _truncate, "truncated"),
     ("src.model", _flip, "sha256"), ("tgt.json", _truncate, "truncated"),
     ("model.safetensors", Path.unlink, "missing")],
)  # fmt: skip
def test_damaged_file_is_named(tmp_path, sp_tok, name, damage, words) -> None:
    save_checkpoint(_full(sp_tok)[0], tmp_path / LAST)
    damage(tmp_path / LAST / name)
    message = _error(load_checkpoint, tmp_path / LAST, training=True)
    assert str(tmp_path / LAST / name) in message and words in message


def test_incomplete_and_newer_checkpoints_refused(tmp_path) -> None:
    save_checkpoint(_weights(1.0), tmp_path / LAST)
    meta_path = tmp_path / LAST / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format": FORMAT + 1}))
    assert "newer" in _error(load_checkpoint, tmp_path / LAST)
    meta_path.write_text('{"format": 2, "fi')
    assert "corrupted" in _error(load_checkpoint, tmp_path / LAST)
    meta_path.unlink()
    assert "not a complete checkpoint" in _error(load_checkpoint, tmp_path / LAST)
    assert "not found" in _error(load_checkpoint, tmp_path / "nothing")


def test_planted_pickle_in_training_state_never_runs(tmp_path) -> None:
    marker = tmp_path / "pwned"
    save_checkpoint(_weights(1.0), tmp_path / LAST)
    # the attacker rewrites training.pt AND meta.json's checksums: the hash check passes
    planted = tmp_path / LAST / "training.pt"
    torch.save({"x": Planted(marker)}, planted)
    meta_path = tmp_path / LAST / "meta.json"
    meta = json.loads(meta_path.read_text())
    blob = planted.read_bytes()
    meta["files"]["training.pt"] = {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    meta_path.write_text(json.dumps(meta))
    assert load_checkpoint(tmp_path / LAST).training is None  # not even read for decoding
    message = _error(load_checkpoint, tmp_path / LAST, training=True)
    assert "training.pt" in message and "exec" in message
    assert not marker.exists()


def test_planted_pickle_in_legacy_file_never_runs(tmp_path) -> None:
    marker = tmp_path / "pwned"
    legacy = {"config": {}, "tokenizers": {}, "model": {}, "rng": Planted(marker)}
    torch.save(legacy, tmp_path / LEGACY_BEST)
    shutil.copy(tmp_path / LEGACY_BEST, tmp_path / "copy.pt")
    message = _error(load_checkpoint, find_checkpoint(tmp_path))
    assert LEGACY_BEST in message and not marker.exists()
    torch.load(tmp_path / "copy.pt", weights_only=False)  # proof the plant is live
    assert marker.exists()


# ---------------------------------------------------------------- legacy run directories
@pytest.mark.parametrize("run", ["legacy_v1_toy_dates", "legacy_v1_toy_transformer"])
def test_legacy_fixture_loads_and_converts(tmp_path, run) -> None:
    run_dir = FIXTURES / run
    path = find_checkpoint(run_dir, "best")
    assert path == run_dir / LEGACY_BEST
    # "last" prefers the legacy last file where the run kept one, else falls back to best
    has_last = (run_dir / LEGACY_LAST).is_file()
    assert find_checkpoint(run_dir, "last") == run_dir / (LEGACY_LAST if has_last else LEGACY_BEST)
    got = load_checkpoint(path, training=True)
    assert (got.format, got.step, got.progress["step"]) == (1, 10, 10)
    assert got.config["model"]["arch"] in ("rnn", "transformer")
    assert got.train_model is None and got.training is None  # best checkpoints: no resume state
    raw = torch.load(path, weights_only=True)
    _same(got.model, raw["model"])
    joint = load_tokenizer(run_dir, "joint")
    for role in ("src", "tgt"):
        assert got.tokenizers[role].encode("9 april 1974") == joint.encode("9 april 1974")
    save_checkpoint(got, tmp_path / BEST)  # converted to the new format
    again = load_checkpoint(find_checkpoint(tmp_path))
    assert (again.format, again.config, again.progress) == (FORMAT, got.config, got.progress)
    _same(again.model, got.model)


def test_legacy_last_with_numpy_rng_loads_weights_only(tmp_path) -> None:
    model = Tied()
    opt = torch.optim.AdamW(model.parameters())
    model.out(model.emb(torch.tensor([3]))).sum().backward()
    opt.step()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in the numpy state
    rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
           "numpy": np.random.get_state()}  # fmt: skip
    draws = (random.random(), np.random.standard_normal(3), torch.rand(3))
    torch.save({"config": CONFIG, "tokenizers": {"src": {"kind": "char", "chars": "ab"},
                "tgt": {"kind": "char", "chars": "abc"}}, "model": model.state_dict(),
                "step": 4, "progress": {"step": 4}, "train_model": model.state_dict(),
                "ema_updates": 4, "optimizer": opt.state_dict(),
                "scheduler": {"last_epoch": 4, "lr_lambdas": [None]}, "rng": rng},
               tmp_path / LEGACY_LAST)  # fmt: skip
    got = load_checkpoint(find_checkpoint(tmp_path, "best"), training=True)
    assert got.path == tmp_path / LEGACY_LAST and got.tokenizers["tgt"].encode("cab") == [6, 4, 5]
    assert set(got.training) == {"optimizer", "scheduler", "rng", "ema_updates"}
    _same(got.train_model, model.state_dict())
    torch.optim.AdamW(Tied().parameters()).load_state_dict(got.training["optimizer"])
    # the numpy key array arrives as a tensor, and survives the new format's weights_only load
    save_checkpoint(got, tmp_path / LAST)
    for state in (
        got.training["rng"],
        load_checkpoint(tmp_path / LAST, training=True).training["rng"],
    ):
        restore_rng(state)
        assert random.random() == draws[0]
        np.testing.assert_array_equal(np.random.standard_normal(3), draws[1])
        assert torch.equal(torch.rand(3), draws[2])
    assert load_checkpoint(tmp_path / LEGACY_LAST).training is None


# ---------------------------------------------------------------- run directories
def test_find_checkpoint_preference(tmp_path) -> None:
    for name in (LEGACY_BEST, LEGACY_LAST):
        (tmp_path / name).write_bytes(b"")
    assert find_checkpoint(tmp_path) == tmp_path / LEGACY_BEST
    assert find_checkpoint(tmp_path, "last") == tmp_path / LEGACY_LAST
    save_checkpoint(_weights(1.0), tmp_path / LAST)  # a legacy run resumed by this release
    assert find_checkpoint(tmp_path) == tmp_path / LEGACY_BEST  # still the best one
    assert find_checkpoint(tmp_path, "last") == tmp_path / LAST
    save_checkpoint(_weights(2.0), tmp_path / BEST)
    assert find_checkpoint(tmp_path) == tmp_path / BEST
    (tmp_path / LEGACY_LAST).unlink()
    os.replace(tmp_path / LAST, tmp_path / f"{LAST}.old-x1")  # a save killed between renames
    assert find_checkpoint(tmp_path, "last") == tmp_path / f"{LAST}.old-x1"
    assert load_checkpoint(tmp_path / LAST).config == {"v": 1.0}
    shutil.rmtree(tmp_path / BEST)
    assert find_checkpoint(tmp_path, "best") == tmp_path / LEGACY_BEST
    (tmp_path / "empty").mkdir()
    assert "not an atento run directory" in _error(find_checkpoint, tmp_path / "empty")
    assert "not found" in _error(find_checkpoint, tmp_path / "missing")
    assert "expected 'best' or 'last'" in _error(find_checkpoint, tmp_path, "worst")


def test_best_falling_back_to_last_is_a_note_on_stderr(tmp_path, capsys) -> None:
    save_checkpoint(_weights(1.0), tmp_path / LAST)
    assert find_checkpoint(tmp_path, "last") == tmp_path / LAST
    assert capsys.readouterr().err == ""  # asked for the last one: nothing to say
    assert find_checkpoint(tmp_path, "best") == tmp_path / LAST
    err = capsys.readouterr().err
    assert err.startswith("atento: note:") and f"has no {BEST}" in err and f"using {LAST}" in err
    assert len(err.splitlines()) == 1
    save_checkpoint(_weights(2.0), tmp_path / BEST)
    assert find_checkpoint(tmp_path, "best") == tmp_path / BEST
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- random number generators
def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str, torch.Tensor))


def test_rng_capture_restore_and_save(tmp_path) -> None:
    random.gauss(0, 1), np.random.standard_normal()  # cached gaussians are part of the state
    state = capture_rng()
    assert _plain(state)
    draws = (random.gauss(0, 1), np.random.standard_normal(4), torch.randn(4))
    save_checkpoint(Checkpoint(config={}, tokenizers={}, model={}, training={"rng": state}),
                    tmp_path / LAST)  # fmt: skip
    for restored in (state, load_checkpoint(tmp_path / LAST, training=True).training["rng"]):
        random.random(), np.random.random(), torch.rand(2)  # move everything on
        restore_rng(restored)
        assert random.gauss(0, 1) == draws[0]
        np.testing.assert_array_equal(np.random.standard_normal(4), draws[1])
        assert torch.equal(torch.randn(4), draws[2])


def test_module_imports_no_model_training_or_config_code() -> None:
    tree = ast.parse(Path(ck.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    banned = ("atento.training", "atento.inference", "atento.models", "atento.config")
    assert not [m for m in imported if m and m.startswith(banned)]
