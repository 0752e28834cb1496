"""Predictors of runs with a decoder to search or sample: translation and language models.

Both decode through one `Translator` over the searchers' step function: a translation model
from its encoder's state and BOS, a decoder-only language model from its prompts (each line
of `translate` is a prompt that beam search continues; `sample` draws a translation of a
source until EOS). What differs is how text becomes ids and back, and where the search starts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from atento.data.lines import LinePolicy, fit_lengths
from atento.data.text import decode_text, prompt_ids, visible
from atento.errors import AtentoError
from atento.inference import Translator
from atento.models.base import DecodeOptions, length_limit
from atento.options import (
    NO_SEARCH,
    NO_VIEW,
    OptionError,
    SampleOptions,
    SearchOptions,
    ViewOptions,
)
from atento.predictors.base import Predictor
from atento.search import Hypothesis


class DecoderPredictor(Predictor):
    """The decoding operations shared by translation and language-model runs."""

    def base_translator(self) -> Translator:
        """The run's `Translator` with its own search settings."""
        raise NotImplementedError

    def encode_one(self, text: str, *, keep_last: bool = False) -> list[int]:
        """A source line's ids (no EOS: the collate adds what the model needs)."""
        raise NotImplementedError

    def encode_many(self, texts: list[str], *, keep_last: bool = False) -> list[list[int]]:
        """`encode_one` of each text (a tokenizer with a batch encoder overrides this)."""
        return [self.encode_one(t, keep_last=keep_last) for t in texts]

    def decode(self, tokens: list[int]) -> str:
        """An output's text (a final EOS is not part of it)."""
        raise NotImplementedError

    def output_pieces(self, tokens: list[int]) -> list[str]:
        raise NotImplementedError

    def source_pieces(self, text: str) -> list[str]:
        raise NotImplementedError

    # ---------------------------------------------------------------- operations
    def translator(
        self, search: SearchOptions = NO_SEARCH, view: ViewOptions = NO_VIEW
    ) -> Translator:
        """The run's translator with these settings, checked (OptionError naming the field)."""
        t = self.base_translator()
        t = replace(t, search=search.resolve(t.search))
        if search.precision is not None:
            t = t.with_precision(search.precision)
        return self.viewed(t, view.check())

    def viewed(self, t: Translator, view: ViewOptions) -> Translator:
        if view.attention and getattr(self.run.cfg.model, "attention", "") == "none":
            raise OptionError("attention", text=f"{self.name} has no attention to return "
                              "(model.attention=none)")  # fmt: skip
        for key in ("layer", "head"):
            value = getattr(view, key)
            if value is None:
                continue
            if not hasattr(t.model, "attention_heads"):
                raise OptionError(key, text="{layer} and {head} apply to Transformer runs only")
            try:
                t = t.with_options(**{key: value})
            except ValueError as exc:
                raise OptionError(key, text=str(exc)) from None
        return t.with_attention(view.attention) if view.attention else t

    def encode(
        self, lines: list[str], policy: LinePolicy | None = None, *, name: str = "input",
        keep_last: bool = False,
    ) -> dict[int, list[int]]:  # fmt: skip
        """The non-empty `lines` encoded and fitted to the model's length limit under `policy`,
        keyed by their index (an empty line has no entry)."""
        keep = [i for i, line in enumerate(lines) if line]
        ids = self.encode_many([lines[i] for i in keep], keep_last=keep_last)
        ids = fit_lengths(ids, length_limit(self.run.model), policy or LinePolicy(), name=name,
                          numbers=[i + 1 for i in keep])  # fmt: skip
        return dict(zip(keep, ids, strict=True))

    def translate(
        self, lines: list[str], translator: Translator, policy: LinePolicy | None = None, *,
        name: str = "input", progress: bool = False,
    ) -> list[list[Hypothesis]]:  # fmt: skip
        """n-best hypotheses per line, in order; an empty line gets an empty list."""
        encoded = self.encode(lines, policy, name=name)
        keys = list(encoded)
        hyps = translator.translate_ids([encoded[i] for i in keys], progress=progress)
        results: list[list[Hypothesis]] = [[] for _ in lines]
        for i, h in zip(keys, hyps, strict=True):
            results[i] = h
        return results

    def sample(
        self, prompts: list[str], options: SampleOptions, *, precision: str | None = None,
        on_step=None,
    ) -> list[list[int]]:  # fmt: skip
        """`options.num` samples of each prompt, in order (prompt 0's, then prompt 1's...):
        their new tokens, as one batch; the same seed gives the same tokens."""
        options.check()
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise AtentoError("prompts must be a string or a non-empty list of strings")
        t = self.translator(SearchOptions(precision=precision))
        t = t.with_options(use_cache=options.use_cache)
        ids = self.encode_many(prompts, keep_last=options.keep_last)
        if not all(ids):
            raise OptionError("prompt", text="the prompt encodes to no tokens")
        ids = fit_lengths(ids, length_limit(self.run.model), LinePolicy(), name="prompt")
        rows = [row for row in ids for _ in range(options.num)]
        return t.sample_ids(
            rows, max_new=options.max_new, temperature=options.temperature,
            top_k=options.top_k, top_p=options.top_p, on_step=on_step,
            generator=torch.Generator().manual_seed(options.seed),
        )  # fmt: skip


class TranslationPredictor(DecoderPredictor):
    """A translation run: translate (beam, n-best, attention), sample, trace, score, corpora."""

    operations = frozenset(
        {"translate", "sample", "trace", "score", "corpus", "cross_attention"}
    )  # fmt: skip
    reads = frozenset({"src", "ref", "hyp_out", "by_length", "buckets"})

    def base_translator(self) -> Translator:
        run = self.run
        return Translator(run.model, run.tokenizers["src"], run.tokenizers["tgt"], run.cfg.search,
                          run.placement)  # fmt: skip

    def encode_one(self, text: str, *, keep_last: bool = False) -> list[int]:
        ids = self.run.tokenizers["src"].encode(text)
        if not ids and not text:
            raise OptionError("prompt", text="a translation run samples translations of a "
                              "source: give it as {prompt}")  # fmt: skip
        return ids

    def encode_many(self, texts: list[str], *, keep_last: bool = False) -> list[list[int]]:
        if not all(texts):
            return super().encode_many(texts)  # an empty source: encode_one says why
        return self.run.tokenizers["src"].encode_batch(texts)

    def decode(self, tokens: list[int]) -> str:
        tok = self.run.tokenizers["tgt"]
        if tokens and tokens[-1] == tok.eos_id:
            tokens = tokens[:-1]
        return tok.decode(tokens)

    def output_pieces(self, tokens: list[int]) -> list[str]:
        return [self.run.tokenizers["tgt"].id_to_piece(i) for i in tokens]

    def source_pieces(self, text: str) -> list[str]:
        tok = self.run.tokenizers["src"]
        return [*tok.pieces(text), tok.id_to_piece(tok.eos_id)]


def _lm_start(model: Any, sources: list[list[int]], options: DecodeOptions) -> tuple[Any, Tensor]:
    """A language model's search starts from each prompt's last token (models/lm_state.py)."""
    state = model.init_state(sources, options)
    return state, torch.tensor([s[-1] for s in sources], dtype=torch.long, device=state.device)


class LanguageModelPredictor(DecoderPredictor):
    """A language-model run: sample (KV-cached), translate (each line a prompt, beam-searched),
    self-attention over a text."""

    operations = frozenset({"translate", "sample", "self_attention"})
    reads = frozenset({"text"})
    empty_prompt: ClassVar[str] = "\n"  # nanoGPT's start: a line break

    @property
    def tok(self):
        return self.run.tokenizers["text"]

    def base_translator(self) -> Translator:
        run = self.run
        return Translator(run.model, self.tok, self.tok, run.cfg.search, run.placement,
                          start=_lm_start)  # fmt: skip

    def viewed(self, t: Translator, view: ViewOptions) -> Translator:
        if view.attention or view.layer is not None or view.head is not None:
            raise OptionError("attention", text=f"{self.name} is a language model: its outputs "
                              "attend to no source (draw its self-attention instead)")  # fmt: skip
        return t

    def encode_one(self, text: str, *, keep_last: bool = False) -> list[int]:
        return prompt_ids(self.tok, text or self.empty_prompt, length_limit(self.run.model),
                          keep_last=keep_last)  # fmt: skip

    def decode(self, tokens: list[int]) -> str:
        return decode_text(self.tok, tokens)

    def output_pieces(self, tokens: list[int]) -> list[str]:
        return [visible(self.tok.id_to_piece(i)) for i in tokens]

    def source_pieces(self, text: str) -> list[str]:
        return self.output_pieces(self.encode_one(text))

    def self_attention(self, text: str, *, layer: int | None, head: int | None):
        return self_attention(self.run, text, layer=layer, head=head)


def self_attention(run: Any, text: str, *, layer: int | None, head: int | None):
    """The task's self-attention (H, T, T) of `layer` over `text` (default: the last layer),
    with row and column labels; OptionError for a layer or head out of range."""
    ViewOptions(layer=layer, head=head).check()
    try:
        return run.task.attention_map(run, text, layer=-1 if layer is None else layer, head=head)
    except ValueError as exc:
        raise OptionError("head" if "head" in str(exc) else "layer", text=str(exc)) from None
