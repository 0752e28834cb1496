"""Text as a language model reads and writes it: whole texts, prompts, plot labels.

A tokenizer that reads line breaks itself (`Tokenizer.whole_text`: characters, byte-level BPE)
encodes a text in one piece; SentencePiece encodes line by line and its EOS (`</s>`) stands for
the line break, so a multi-line text round-trips through `encode_text` / `decode_text`.
"""

from __future__ import annotations

from atento.data.vocab import Tokenizer
from atento.errors import AtentoError
from atento.options import OptionError


def encode_text(tok: Tokenizer, text: str) -> list[int]:
    """Ids of a whole text: in one piece where the tokenizer reads line breaks, else line by
    line + EOS."""
    if tok.whole_text:
        return tok.encode(text)
    ids: list[int] = []
    for line in text.split("\n"):
        ids += tok.encode(line) + [tok.eos_id]
    return ids


def prompt_ids(tok: Tokenizer, text: str, limit: int | None, *, keep_last: bool = False):
    """A prompt's ids: no line end appended where the text has none (SentencePiece); longer
    than the model's context `limit`: an error, or its last `limit` ids with `keep_last`."""
    ids = encode_text(tok, text)
    if not tok.whole_text and ids and ids[-1] == tok.eos_id and not text.endswith("\n"):
        ids = ids[:-1]
    if not ids:
        raise AtentoError("the prompt encodes to no tokens")
    if limit is not None and len(ids) > limit:
        if not keep_last:
            raise OptionError(
                "prompt",
                text=f"the prompt is {len(ids)} tokens, longer than the "
                f"model's context {limit} ({{keep_last}} keeps its last {limit})",
            )
        ids = ids[-limit:]
    return ids


def visible(piece: str) -> str:
    """A piece as a plot label: line breaks, tabs and spaces made visible."""
    return piece.replace("\n", "\\n").replace("\t", "\\t").replace(" ", "\u2423") or "''"


def decode_text(tok: Tokenizer, ids: list[int]) -> str:
    """The text of ids (EOS = a line break where the tokenizer encodes line by line)."""
    if tok.whole_text:
        return tok.decode(ids)
    lines, line = [], []
    for i in ids:
        if i == tok.eos_id:
            lines.append(tok.decode(line))
            line = []
        else:
            line.append(i)
    return "\n".join([*lines, tok.decode(line)])


def piece_labels(tok: Tokenizer, ids: list[int], names: dict[int, str]) -> list[str]:
    """Plot labels of ids: the special ones by `names` ([CLS], [SEP]), the others visible."""
    return [names.get(i) or visible(tok.id_to_piece(i)) for i in ids]
