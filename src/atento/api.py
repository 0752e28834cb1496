"""The Python API: load a run and translate (sample, caption, classify) from a notebook or a
script.

    import atento
    m = atento.load("runs/x")
    for t in m.translate(["Un chien court.", "Une femme lit."], beam=5, nbest=3):
        print(t.text, t.score)               # the best hypothesis
        for h in t.nbest:                    # all of them, best first
            print(h.score, h.pieces, h.token_log_probs)
    m.plot_attention("Un chien court.", "dog.png")

    lm = atento.load("runs/shakespeare_char")          # a language-model run
    print(lm.sample("ROMEO:", max_new=200, temperature=0.8, top_k=40, seed=1)[0])
    atento.load("runs/caption").caption(["dog.jpg"], beam=3)[0].text     # a captioning run
    atento.load("runs/sst2_bert").classify("a gorgeous film")[0].label   # a classifier

`Model` wraps a loaded run and its immutable `Translator`: every call takes its own settings
(beam, alpha, nbest, attention, layer, head) and leaves the model unchanged, so one `Model`
can serve concurrent callers (`atento serve` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from atento.data.vocab import EOS_PIECE
from atento.errors import AtentoError
from atento.inference import Translator
from atento.rundir import LoadedRun, load_run
from atento.search import Hypothesis


@dataclass
class Output:
    """One hypothesis: `text` (detokenised), `pieces` (output pieces, no EOS), `tokens` (ids),
    `score` (length-normalised, what the beam ranks by), `log_prob` (raw sum), one
    `token_log_probs` entry per generated step (EOS included when `finished`), and `attention`
    (Ty, S) with rows = pieces (+ EOS when finished) and columns = the source pieces + EOS, or
    None unless asked for."""

    text: str
    pieces: list[str]
    tokens: list[int]
    score: float
    log_prob: float
    token_log_probs: list[float]
    finished: bool
    attention: Tensor | None = None

    @property
    def attention_rows(self) -> list[str]:
        """The row labels of `attention`: the pieces plus EOS when finished."""
        return [*self.pieces, EOS_PIECE] if self.finished else list(self.pieces)


@dataclass
class Translation:
    """A source sentence and its n-best `Output`s (best first); the best one's fields are
    available directly (`t.text`, `t.score`, ...)."""

    source: str
    source_pieces: list[str]  # the pieces the encoder read, EOS included
    nbest: list[Output] = field(default_factory=list)

    @property
    def best(self) -> Output:
        return self.nbest[0]

    def __getattr__(self, name: str):
        if name in Output.__dataclass_fields__:
            return getattr(self.best, name)
        raise AttributeError(name)


@dataclass
class Caption:
    """An image's caption: `text` (the best), `nbest` [(text, score)], best first."""

    image: str
    nbest: list[tuple[str, float]]

    @property
    def text(self) -> str:
        return self.nbest[0][0]


@dataclass
class Label:
    """A sentence's class: the most probable `label`, its `probability`, and all of them."""

    label: str
    probability: float
    probabilities: dict[str, float]


class Model:
    """A loaded run for decoding (see the module docstring); `load(run_dir)` makes one."""

    def __init__(self, run: LoadedRun) -> None:
        self.run = run
        self.task = run.cfg.task
        self.translator: Translator | None = (
            run.translator() if self.task in ("translation", "caption") else None
        )

    def _need(self, task: str, what: str) -> None:
        if self.task != task:
            raise AtentoError(f"{self.name} is a {self.task} run: {what} needs a {task} run")

    @property
    def name(self) -> str:
        return self.run.path.name

    @property
    def has_attention(self) -> bool:
        return getattr(self.run.cfg.model, "attention", "scaled_dot") != "none"

    def info(self) -> dict:
        """A summary of the run: architecture, sizes, checkpoint step, search defaults."""
        cfg, model = self.run.cfg, self.run.model
        info = {
            "name": self.name,
            "task": cfg.task,
            "arch": cfg.model.arch,
            "attention": getattr(cfg.model, "attention", None),
            "parameters": sum(p.numel() for p in model.parameters()),
            "step": self.run.step,
            **{f"{k}_vocab": tok.vocab_size for k, tok in self.run.tokenizers.items()},
            "search": {"beam": cfg.search.beam, "alpha": cfg.search.alpha},
            "device": str(self.run.placement.device),
            "precision": (self.translator or self.run).placement.precision,
            "layers": getattr(model, "n_layers", None),
            "heads": getattr(model, "heads", None),
        }
        for key in ("src_lang", "tgt_lang"):
            if hasattr(cfg.data, key):
                info[key] = getattr(cfg.data, key)
        return info

    def translator_for(
        self,
        *,
        beam: int | None = None,
        alpha: float | None = None,
        nbest: int | None = None,
        attention: bool = False,
        layer: int | None = None,
        head: int | None = None,
    ) -> Translator:
        """The run's translator with these settings; AtentoError (one line) when out of range."""
        self._need("translation", "translate")
        t = self.translator.with_search(beam=beam, alpha=alpha, nbest=nbest)
        s = t.search
        if s.beam < 1:
            raise AtentoError(f"beam must be at least 1, got {s.beam}")
        if not s.alpha >= 0:
            raise AtentoError(f"alpha must be >= 0, got {s.alpha}")
        if nbest is None:
            t = t.with_search(nbest=min(s.nbest, s.beam))
        elif not 1 <= nbest <= s.beam:
            raise AtentoError(f"nbest must be between 1 and the beam width {s.beam}, got {nbest}")
        if attention and not self.has_attention:
            raise AtentoError(f"{self.name} has no attention to return (model.attention=none)")
        if (layer is not None or head is not None) and self.run.cfg.model.arch != "transformer":
            raise AtentoError("layer and head apply to Transformer runs only")
        try:
            t = t.with_options(layer=layer, head=head)
        except ValueError as exc:
            raise AtentoError(str(exc)) from None
        return t.with_attention(attention)

    def translate(
        self,
        sentences: str | list[str],
        *,
        beam: int | None = None,
        alpha: float | None = None,
        nbest: int | None = None,
        attention: bool = False,
        layer: int | None = None,
        head: int | None = None,
    ) -> list[Translation]:
        """Translate `sentences` (a string is one sentence) -> one `Translation` each, in input
        order. Defaults come from the run's `search` config; `attention=True` fills each
        output's attention matrix (Transformers: decoder `layer`, `head` or the head mean)."""
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        _check_sentences(sentences)
        t = self.translator_for(
            beam=beam, alpha=alpha, nbest=nbest, attention=attention, layer=layer, head=head
        )
        return self.wrap(sentences, t.translate(sentences))

    def wrap(self, sentences: list[str], results: list[list[Hypothesis]]) -> list[Translation]:
        """Hypotheses from a `Translator` as `Translation`s with text, pieces and labels."""
        return [self._translation(s, hyps) for s, hyps in zip(sentences, results, strict=True)]

    def _translation(self, sentence: str, hyps: list[Hypothesis]) -> Translation:
        src_pieces = [*self.run.src_tok.pieces(sentence), EOS_PIECE]
        tgt = self.run.tgt_tok
        outputs = []
        for h in hyps:
            pieces = [tgt.id_to_piece(i) for i in h.tokens]
            rows = len(pieces) + (1 if h.finished else 0)
            weights = None
            if h.attention is not None:  # cut a batch's padding columns
                weights = h.attention[:rows, : len(src_pieces)].float()
            outputs.append(
                Output(
                    text=tgt.decode(h.tokens), pieces=pieces, tokens=list(h.tokens),
                    score=h.score, log_prob=h.log_prob, token_log_probs=list(h.token_log_probs),
                    finished=h.finished, attention=weights,
                )
            )  # fmt: skip
        return Translation(sentence, src_pieces, outputs)

    def search_trace(
        self, sentence: str, *, beam: int | None = None, alpha: float | None = None
    ) -> dict:
        """The beam search of one sentence, step by step (plain data, JSON-ready): per step
        the 2K candidates scored, each with its piece, parent slot, accumulated log-prob,
        length-normalised score and status (kept / finished / pruned), plus the n-best."""
        _check_sentences([sentence])
        t = self.translator_for(beam=beam, alpha=alpha)
        t = t.with_search(nbest=t.search.beam)
        hyps, trace = t.traced([sentence])
        record = trace.to_dict(0)
        tgt = self.run.tgt_tok
        for step in record["steps"]:
            for c in step["candidates"]:
                c["piece"] = tgt.id_to_piece(c["token"])
        (translation,) = self.wrap([sentence], hyps)
        record["alpha"] = t.search.alpha
        record["nbest"] = [
            {"text": o.text, "pieces": o.pieces, "score": o.score, "finished": o.finished}
            for o in translation.nbest
        ]
        return record

    def plot_attention(
        self,
        sentence: str | Translation,
        path: str | Path,
        *,
        layer: int | None = None,
        head: int | None = None,
        beam: int | None = None,
    ) -> Path:
        """Draw the best hypothesis's attention for `sentence` (or a `Translation` decoded with
        attention=True) into the PNG `path`; returns the path. For a language-model run,
        `sentence` is a text and the drawing its self-attention (`layer`, `head` or the mean)."""
        from atento.analysis.heatmap import plot_attention

        if self.task != "translation" and isinstance(sentence, str):
            weights, rows, cols = self.self_attention(sentence, layer=layer, head=head)
            return plot_attention(
                weights, cols, rows, path, title=sentence,
                xlabel="attended to (key)", ylabel="position (query)",
            )  # fmt: skip

        if isinstance(sentence, Translation):
            translation = sentence
            if translation.best.attention is None:
                raise AtentoError("this translation carries no attention: use attention=True")
        else:
            (translation,) = self.translate(
                sentence, beam=beam, attention=True, layer=layer, head=head
            )
        best = translation.best
        title = f"{translation.source} -> {best.text}"
        return plot_attention(
            best.attention, translation.source_pieces, best.attention_rows, path, title=title
        )

    def caption(
        self,
        images: str | Path | list[str | Path],
        *,
        beam: int | None = None,
        alpha: float | None = None,
        nbest: int | None = None,
    ) -> list[Caption]:
        """Caption image files with a captioning run -> one `Caption` each, in order (features
        from the run's feature cache). An unreadable image is an AtentoError naming it."""
        self._need("caption", "caption")
        paths = [images] if isinstance(images, (str, Path)) else list(images)
        if not paths:
            raise AtentoError("no images to caption")
        feats, errors = self.run.task.image_features(paths)  # at the run's cut
        if errors:
            raise AtentoError(errors[min(errors)])
        s = self.run.cfg.search
        beam = s.beam if beam is None else beam
        if beam < 1 or not 1 <= (nbest or 1) <= beam:
            raise AtentoError(f"need beam >= 1 and 1 <= nbest <= beam, got {beam}, {nbest}")
        t = self.translator.with_search(beam=beam, alpha=alpha, nbest=nbest or 1)
        tok = self.run.tgt_tok
        return [
            Caption(str(p), [(tok.decode(h.tokens), h.score) for h in hyps])
            for p, hyps in zip(paths, t.translate_ids(feats), strict=True)
        ]

    def classify(self, sentences: str | list[str]) -> list[Label]:
        """Classify sentences with a classification run -> one `Label` each (the most probable
        class, its probability and every class's), in order."""
        from atento.data.lines import LinePolicy, fit_lengths
        from atento.tasks.classify import predict

        self._need("classify", "classify")
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        _check_sentences(sentences)
        task = self.run.task
        limit = task.piece_limit()
        ids = fit_lengths(task.tokenizers["text"].encode_batch(sentences), limit,
                          LinePolicy(on_too_long="error"), name="sentences",
                          numbers=list(range(1, len(sentences) + 1)))  # fmt: skip
        probs = predict(self.run.model, [task.sequence(x) for x in ids], self.run.placement)
        names = task.tokenizers["labels"].labels
        out = []
        for row in probs:
            p, c = row.max(-1)
            out.append(Label(names[int(c)], float(p), dict(zip(names, row.tolist(), strict=True))))
        return out

    def self_attention(
        self, text: str, *, layer: int | None = None, head: int | None = None
    ) -> tuple[Tensor, list[str], list[str]]:
        """For runs without a decoder to follow (language models, classifiers): the
        self-attention (T, T) of `layer` (default: the last) over `text`, one `head` or the
        mean of heads, with the row (query) and column (key) labels."""
        if self.task == "translation":
            raise AtentoError(f"{self.name} is a translation run: use translate(attention=True)")
        heads, rows, cols = self.run.task.attention_map(
            self.run, text, layer=-1 if layer is None else layer, head=head
        )
        return (heads.mean(0) if head is None else heads[head]), rows, cols

    def sample(
        self,
        prompts: str | list[str] = "",
        *,
        max_new: int = 200,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 1,
        keep_last: bool = False,
    ) -> list[str]:
        """Continue each prompt of a language-model run (a string is one prompt; "" starts
        from a line break) -> the new text of each, in order. KV-cached, all prompts in one
        batch; the same seed gives the same text (`atento sample` is this, streamed)."""
        import torch

        from atento.search.sampling import check_settings, sample
        from atento.tasks.lm import decode_text, prompt_ids

        self._need("lm", "sample")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise AtentoError("prompts must be a string or a non-empty list of strings")
        check_settings(max_new=max_new, temperature=temperature, top_k=top_k, top_p=top_p)
        tok, limit = self.run.tokenizers["text"], self.run.model.length_limit()
        ids = [prompt_ids(tok, p or "\n", limit, keep_last=keep_last) for p in prompts]
        placement = self.run.placement
        with placement.autocast():
            rows = sample(
                self.run.model, ids, max_new=max_new, temperature=temperature, top_k=top_k,
                top_p=top_p, generator=torch.Generator().manual_seed(seed),
                device=placement.device,
            )  # fmt: skip
        return [decode_text(tok, row) for row in rows]


def _check_sentences(sentences: list[str]) -> None:
    if not sentences:
        raise AtentoError("no sentences to translate")
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise AtentoError(f"sentence {i} is not a string: {type(s).__name__}")
        if not s.strip():
            raise AtentoError(f"sentence {i} is empty")


def load(run_dir: str | Path, which: str = "best", *, device: str | None = None) -> Model:
    """Load a run directory written by `atento train` (its best checkpoint, or `which="last"`)
    onto `device` (default: the run's `runtime.device`); AtentoError when it is not one."""
    return Model(load_run(run_dir, which, device=device))
