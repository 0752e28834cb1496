"""Property-based tests (hypothesis): readers, tokenizers, the config loader and every
command's arguments get arbitrary bytes, empty files, CRLF, a BOM, NUL bytes, invalid UTF-8,
100k-character lines and mismatched line counts, and answer with a defined result or a clear
one-line AtentoError, never a traceback."""

from __future__ import annotations

import contextlib
import io
import string
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atento.cli.main import build_parser, main
from atento.config_io import config_from_dict, load_config
from atento.data.lines import LinePolicy, decode_lines
from atento.data.parallel import read_parallel
from atento.data.tokenizers import CharTokenizer, SentencePieceTokenizer, build_tokenizer
from atento.data.vocab import N_SPECIAL, UNK_ID
from atento.errors import AtentoError
from conftest import CONFIGS

EXAMPLES = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Bytes that stress line readers: newlines, CR, NUL, a BOM, bytes invalid in UTF-8, multi-byte
# characters cut in half, U+2028, and plain text.
PIECES = [b"\n", b"\r\n", b"\r", b"\x00", b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\xc3\xa9",
          b"\xe2\x80\xa8", b" ", b"\t", b"abc", "é日本".encode()]  # fmt: skip
nasty_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
)
policies = st.builds(
    LinePolicy,
    on_empty=st.sampled_from(["emit-empty", "error"]),
    on_bad_utf8=st.sampled_from(["error", "replace"]),
    on_too_long=st.sampled_from(["error", "truncate"]),
)


def _expected_lines(data: bytes) -> int:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _one_line(exc: AtentoError) -> None:
    message = str(exc)
    assert message and "\n" not in message and "Traceback" not in message


# ---------------------------------------------------------------- line readers
@EXAMPLES
@given(data=nasty_bytes, policy=policies)
def test_line_reader_gives_one_string_per_line_or_a_located_error(data, policy) -> None:
    try:
        lines = decode_lines(data, "in.txt", policy)
    except AtentoError as exc:
        _one_line(exc)
        assert str(exc).startswith("in.txt:")  # file and line named
        line = int(str(exc).split(":")[1])
        assert 1 <= line <= _expected_lines(data)
        return
    assert len(lines) == _expected_lines(data)
    assert all(isinstance(x, str) and "\n" not in x and x == x.rstrip() for x in lines)
    if policy.on_empty == "error":
        assert all(lines)


@EXAMPLES
@given(data=nasty_bytes)
def test_replace_and_emit_empty_never_fail(data) -> None:
    lines = decode_lines(data, "x", LinePolicy(on_bad_utf8="replace"))
    assert len(lines) == _expected_lines(data)


def test_a_100k_character_line_is_read_whole() -> None:
    line = "ab " * 33_334
    assert decode_lines(line.encode() + b"\n", "x") == [line.rstrip()]


@EXAMPLES
@given(src=nasty_bytes, tgt=nasty_bytes)
def test_parallel_reader_pairs_or_names_the_problem(tmp_path_factory, src, tgt) -> None:
    d = tmp_path_factory.mktemp("par")
    (d / "a.txt").write_bytes(src)
    (d / "b.txt").write_bytes(tgt)
    try:
        pairs = read_parallel(d / "a.txt", d / "b.txt")
    except AtentoError as exc:
        _one_line(exc)
        assert "a.txt" in str(exc) or "b.txt" in str(exc)
        return
    assert len(pairs) == _expected_lines(src) == _expected_lines(tgt)


# ---------------------------------------------------------------- tokenizers
any_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300)


@EXAMPLES
@given(train=any_text, text=any_text)
def test_char_tokenizer_ids_in_range_and_round_trip_over_its_alphabet(train, text) -> None:
    tok = CharTokenizer.from_texts([train])
    ids = tok.encode(text)
    assert len(ids) == len(text) == len(tok.pieces(text))
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert all((i == UNK_ID) == (c not in set(train)) for i, c in zip(ids, text, strict=True))
    known = "".join(c for c in text if c in set(train))
    assert tok.decode(tok.encode(known)) == known
    assert all(i >= N_SPECIAL for i in tok.encode(known))


@pytest.fixture(scope="module")
def spm_tok() -> SentencePieceTokenizer:
    texts = [f"the {w} sat on the mat number {i}" for i, w in enumerate(["cat", "dog"] * 60)]
    return build_tokenizer("sentencepiece", texts, vocab_size=60, run_dir=None, name="joint")


@EXAMPLES
@given(text=any_text)
def test_sentencepiece_encodes_any_text_to_ids_in_range(spm_tok, text) -> None:
    ids = spm_tok.encode(text)
    assert all(0 <= i < spm_tok.vocab_size for i in ids)
    assert len(spm_tok.pieces(text)) == len(ids)
    assert isinstance(spm_tok.decode(ids), str)
    assert spm_tok.encode_batch([text, text]) == [ids, ids]


# ---------------------------------------------------------------- the config loader
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
SECTIONS = ["task", "data", "model", "train", "search", "runtime"]
known_keys = st.sampled_from(
    ["arch", "hidden_size", "attention", "lr", "max_steps", "beam", "alpha", "device",
     "precision", "corpus", "tokenizer", "batch_tokens", "dropout", "positions", "threads"]
)  # fmt: skip
config_dicts = st.dictionaries(
    st.sampled_from(SECTIONS) | st.text(max_size=8),
    st.dictionaries(known_keys | st.text(max_size=8), yaml_values, max_size=4) | yaml_values,
    max_size=5,
)


@EXAMPLES
@given(raw=config_dicts)
def test_config_from_any_mapping_is_a_config_or_one_error(raw) -> None:
    try:
        config_from_dict(raw)
    except AtentoError as exc:
        _one_line(exc)


@EXAMPLES
@given(data=nasty_bytes | config_dicts.map(lambda d: yaml.safe_dump(d).encode()))
def test_config_file_of_any_bytes_is_a_config_or_one_error(tmp_path_factory, data) -> None:
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_bytes(data)
    try:
        load_config(path)
    except AtentoError as exc:
        _one_line(exc)
        assert "c.yaml" in str(exc) or "config" in str(exc)


overrides = st.lists(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(
        ["model.arch", "model.hidden_size", "train.lr", "search.beam", "runtime.precision",
         "data.max_len", "nope.key", "train", "model.attention.x"]), st.text(max_size=10))
    | st.text(max_size=20),
    max_size=4,
)  # fmt: skip


@EXAMPLES
@given(items=overrides)
def test_overrides_of_any_shape_are_applied_or_refused_in_one_line(items) -> None:
    try:
        load_config(CONFIGS / "toy_dates.yaml", items)
    except AtentoError as exc:
        _one_line(exc)


# ---------------------------------------------------------------- command-line arguments
COMMANDS = sorted(next(a for a in build_parser()._actions if a.dest == "command").choices)
SLOW = {"demo", "serve", "train"}  # these would start real work with valid arguments
words = st.sampled_from(
    ["--beam", "0", "-1", "3", "--alpha", "-0.5", "nan", "--batch-size", "--nbest", "x",
     "--src", "--ref", "-i", "missing.txt", "--json", "--out", "--layer", "99", "--head",
     "--on-empty", "error", "--on-bad-utf8", "--precision", "bf16", "--workers", "", "\x00",
     "é", "--", "-"]
)  # fmt: skip


@contextlib.contextmanager
def _captured():
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO("")
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr, sys.stdin = old


@EXAMPLES
@given(command=st.sampled_from([c for c in COMMANDS if c not in SLOW]),
       args=st.lists(words, max_size=8))  # fmt: skip
def test_any_arguments_exit_0_or_2_without_a_traceback(tmp_path_factory, command, args) -> None:
    run_dir = str(tmp_path_factory.getbasetemp() / "no-such-run")
    with _captured() as (_, err):
        try:
            code = main([command, run_dir, *args], guard=False)  # a bug: its traceback
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    assert code in (0, 2), err.getvalue()
    assert "Traceback" not in err.getvalue()


def test_every_command_is_in_the_property_test() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


@EXAMPLES
@given(args=st.lists(words, max_size=6))
def test_train_arguments_without_a_config_never_traceback(tmp_path_factory, args) -> None:
    missing = str(tmp_path_factory.getbasetemp() / "missing.yaml")
    with _captured() as (_, err):
        try:
            code = main(["train", missing, *args], guard=False)
        except SystemExit as exc:
            code = exc.code
    assert code == 2 and "Traceback" not in err.getvalue()


def test_string_alphabet_sanity() -> None:  # the strategies above do produce these cases
    assert _expected_lines(b"\xef\xbb\xbf") == 0 and _expected_lines(b"a\r\nb") == 2
    assert set(string.digits) <= set(CharTokenizer.from_texts(["0123456789"]).chars)
