"""One tokenizer builder (`data.tokenizers.build_tokenizer`) for every task: a new run's
tokenizers are saved into its run directory only, and without one nothing is written at all,
never into the current directory."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from atento.config_io import config_from_dict
from atento.data.tokenizers import KINDS, build_tokenizer, load_tokenizer
from atento.errors import AtentoError
from atento.registry import task_class

TEXTS = [f"the {a} {n} sat on the mat near the house number {i}"
         for i, a in enumerate(["cat", "dog", "bird"] * 20) for n in ("black", "old")]  # fmt: skip
TINY = {"d_model": 16, "heads": 2, "layers": 1, "ff_size": 32, "context": 32}


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("kind", KINDS)
def test_build_tokenizer_writes_into_the_run_directory_only(tmp_path, cwd, kind) -> None:
    tok = build_tokenizer(kind, TEXTS, vocab_size=60, run_dir=None, name="text")
    assert tok.kind == kind and tok.decode(tok.encode(TEXTS[5])) == TEXTS[5]
    run = tmp_path / "run"
    saved = build_tokenizer(kind, TEXTS, vocab_size=60, run_dir=run, name="text")
    files = ["text.json", "text.model"] if kind == "sentencepiece" else ["text.json"]
    assert sorted(p.name for p in run.iterdir()) == files
    assert list(cwd.iterdir()) == []
    back = load_tokenizer(run, "text")
    assert back.encode(TEXTS[7]) == saved.encode(TEXTS[7]) == tok.encode(TEXTS[7])


def test_build_tokenizer_names_the_kinds_it_knows() -> None:
    with pytest.raises(AtentoError, match="unknown tokenizer kind 'bpe' .use char, word, sent"):
        build_tokenizer("bpe", TEXTS, run_dir=None, name="text")


@pytest.mark.parametrize("kind", ["sentencepiece", "char"])
@pytest.mark.parametrize("joint", [True, False])
def test_translation_saves_joint_or_separate_tokenizers(tmp_path, cwd, kind, joint) -> None:
    data = {"corpus": "dates", "n_train": 300, "n_valid": 20, "n_test": 20, "tokenizer": kind,
            "vocab_size": 200, "joint_vocab": joint}  # fmt: skip
    cfg = config_from_dict({"data": data, "runtime": {"device": "cpu"}})
    task = task_class("translation")(cfg, log=lambda *_: None)
    task.prepare(tmp_path / "run", None)
    src, tgt = task.tokenizers["src"], task.tokenizers["tgt"]
    assert (src is tgt) == joint
    names = ["joint"] if joint else ["src", "tgt"]
    # the tokenizers (a copy of the corpus store's) and the record of which store it was
    assert {p.stem for p in (tmp_path / "run").iterdir()} == {*names, "store"}
    for name, tok in zip(names, (src, tgt), strict=False):
        assert load_tokenizer(tmp_path / "run", name).encode("1 mai 1999") == tok.encode(
            "1 mai 1999"
        )
    task.prepare(None, None)
    assert list(cwd.iterdir()) == []


def _text_tasks(tmp_path: Path) -> dict[str, dict]:
    """Configs of the tasks that build a `text` tokenizer, with SentencePiece."""
    text = tmp_path / "data" / "train.txt"
    text.parent.mkdir()
    text.write_text("".join(t + "\n" for t in TEXTS * 3), encoding="utf-8")
    tsv = tmp_path / "data" / "train.tsv"
    tsv.write_text("sentence\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(TEXTS)),
                   encoding="utf-8")  # fmt: skip
    sp = {"tokenizer": "sentencepiece", "vocab_size": 60}
    return {
        "lm": {"data": {"train": str(text), "block_size": 16, **sp}, "model": {"arch": "gpt"}},
        "mlm": {"data": {"train": str(tsv), "format": "sst2", **sp}, "model": {"arch": "bert"}},
        "classify": {
            "data": {"train": str(tsv), "valid": str(tsv), "format": "sst2", **sp},
            "model": {"arch": "bert"},
        },  # fmt: skip
    }


@pytest.mark.parametrize("name", ["lm", "mlm", "classify"])
def test_text_tasks_without_a_run_directory_write_nothing(tmp_path, cwd, name) -> None:
    raw = _text_tasks(tmp_path)[name]
    raw["model"].update(TINY)
    cfg = config_from_dict({"task": name, **raw, "runtime": {"device": "cpu"}})
    task = task_class(name)(cfg, log=lambda *_: None)
    task.prepare(None, None)
    assert task.tokenizers["text"].kind == "sentencepiece"
    assert list(cwd.iterdir()) == []
    task.prepare(tmp_path / "run", None)
    assert {"text.json", "text.model"} <= {p.name for p in (tmp_path / "run").iterdir()}


@pytest.mark.parametrize("kind", ["sentencepiece", "word"])
def test_captioning_without_a_run_directory_writes_nothing(tmp_path, cwd, kind) -> None:
    data = {"corpus": "tsv", "train_tsv": "t.tsv", "images": "img", "tokenizer": kind,
            "min_count": 1, "vocab_size": 60}  # fmt: skip
    cfg = config_from_dict({"task": "caption", "data": data,
                            "model": {"arch": "show_attend_tell"}})  # fmt: skip
    task = task_class("caption")(cfg, log=lambda *_: None)
    train = SimpleNamespace(captions=[TEXTS[i : i + 5] for i in range(0, len(TEXTS), 5)])
    tok = task._build_tokenizer(train, None)
    assert tok.kind == kind and tok.decode(tok.encode(TEXTS[3])) == TEXTS[3]
    assert list(cwd.iterdir()) == []
    task._build_tokenizer(train, tmp_path / "run")
    assert (tmp_path / "run" / "tgt.json").is_file()
