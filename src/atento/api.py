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

`Model` wraps a loaded run and its task's predictor (`atento.predictors`): each method is a
typed call of one operation, and a run whose task does not offer it gets a one-line error
naming the tasks that do. Every call takes its own settings (beam, alpha, nbest, attention,
layer, head) and leaves the model unchanged, so one `Model` can serve concurrent callers
(`atento serve` does).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from atento.errors import AtentoError
from atento.options import SampleOptions, SearchOptions, ViewOptions
from atento.predictors.caption import Caption
from atento.predictors.classify import Label
from atento.predictors.outputs import Output, Translation, wrap
from atento.rundir import LoadedRun, load_run
from atento.search import Hypothesis

__all__ = ["Caption", "Label", "Model", "Output", "Translation", "load"]


class Model:
    """A loaded run for decoding (see the module docstring); `load(run_dir)` makes one."""

    def __init__(self, run: LoadedRun) -> None:
        self.run = run
        self.task = run.cfg.task
        self.predictor = run.predictor

    @property
    def name(self) -> str:
        return self.run.path.name

    def info(self) -> dict:
        """A summary of the run: architecture, sizes, checkpoint step, search defaults."""
        return self.predictor.info()

    def translator_for(
        self, *, beam: int | None = None, alpha: float | None = None, nbest: int | None = None,
        attention: bool = False, layer: int | None = None, head: int | None = None,
    ):  # fmt: skip
        """The run's translator with these settings; OptionError (one line, naming the field)
        when out of range."""
        predictor = self.predictor.require("translate")
        return predictor.translator(SearchOptions(beam=beam, alpha=alpha, nbest=nbest),
                                    ViewOptions(attention, layer, head))  # fmt: skip

    def translate(
        self, sentences: str | list[str], *, beam: int | None = None, alpha: float | None = None,
        nbest: int | None = None, attention: bool = False, layer: int | None = None,
        head: int | None = None,
    ) -> list[Translation]:  # fmt: skip
        """Translate `sentences` (a string is one sentence) -> one `Translation` each, in input
        order. Defaults come from the run's `search` config; `attention=True` fills each
        output's attention matrix (Transformers: decoder `layer`, `head` or the head mean).
        A language-model run continues each sentence as a prompt (beam search)."""
        sentences = _sentences(sentences)
        t = self.translator_for(
            beam=beam, alpha=alpha, nbest=nbest, attention=attention, layer=layer, head=head
        )
        return self.wrap(sentences, self.predictor.translate(sentences, t))

    def wrap(self, sentences: list[str], results: list[list[Hypothesis]]) -> list[Translation]:
        """Hypotheses of a translator as `Translation`s with text, pieces and labels."""
        return [wrap(self.predictor, s, h) for s, h in zip(sentences, results, strict=True)]

    def search_trace(
        self, sentence: str, *, beam: int | None = None, alpha: float | None = None
    ) -> dict:
        """The beam search of one sentence, step by step (plain data, JSON-ready): per step
        the 2K candidates scored, each with its piece, parent slot, accumulated log-prob,
        length-normalised score and status (kept / finished / pruned), plus the n-best."""
        _sentences([sentence])
        self.predictor.require("trace", command="search_trace")
        t = self.translator_for(beam=beam, alpha=alpha)
        t = t.with_search(nbest=t.search.beam)
        hyps, trace = t.traced([sentence])
        record = trace.to_dict(0)
        for step in record["steps"]:
            for c in step["candidates"]:
                c["piece"] = self.predictor.output_pieces([c["token"]])[0]
        (translation,) = self.wrap([sentence], hyps)
        record["alpha"] = t.search.alpha
        record["nbest"] = [
            {"text": o.text, "pieces": o.pieces, "score": o.score, "finished": o.finished}
            for o in translation.nbest
        ]
        return record

    def plot_attention(
        self, sentence: str | Translation, path: str | Path, *, layer: int | None = None,
        head: int | None = None, beam: int | None = None,
    ) -> Path:  # fmt: skip
        """Draw the attention of `sentence` into the PNG `path`; returns the path. A
        translation run draws its best hypothesis's cross-attention (or a `Translation`
        decoded with attention=True); a captioning run the image's regions under each word;
        language models and classifiers the self-attention over the text (`layer`, `head` or
        the mean of heads)."""
        from atento.analysis.heatmap import plot_attention

        p = self.predictor
        if isinstance(sentence, str) and p.offers("self_attention"):
            weights, rows, cols = self.self_attention(sentence, layer=layer, head=head)
            return plot_attention(
                weights, cols, rows, path, title=sentence,
                xlabel="attended to (key)", ylabel="position (query)",
            )  # fmt: skip
        if isinstance(sentence, str) and p.offers("image_attention"):
            return p.plot_attention(sentence, path, SearchOptions(beam=beam))[0]
        p.require("cross_attention", command="plot_attention")
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
        self, images: str | Path | list[str | Path], *, beam: int | None = None,
        alpha: float | None = None, nbest: int | None = None,
    ) -> list[Caption]:  # fmt: skip
        """Caption image files with a captioning run -> one `Caption` each, in order (features
        from the run's feature cache). An unreadable image is an AtentoError naming it."""
        p = self.predictor.require("caption")
        paths = [images] if isinstance(images, (str, Path)) else list(images)
        captions, errors = p.caption(paths, SearchOptions(beam=beam, alpha=alpha, nbest=nbest))
        if errors:
            raise AtentoError(errors[min(errors)])
        return captions

    def classify(self, sentences: str | list[str]) -> list[Label]:
        """Classify sentences with a classification run -> one `Label` each (the most probable
        class, its probability and every class's), in order."""
        p = self.predictor.require("classify")
        return p.classify(_sentences(sentences), name="sentences")

    def self_attention(
        self, text: str, *, layer: int | None = None, head: int | None = None
    ) -> tuple[Tensor, list[str], list[str]]:
        """For runs without a decoder to follow (language models, classifiers): the
        self-attention (T, T) of `layer` (default: the last) over `text`, one `head` or the
        mean of heads, with the row (query) and column (key) labels."""
        p = self.predictor.require("self_attention", command="self_attention")
        heads, rows, cols = p.self_attention(text, layer=layer, head=head)
        return (heads.mean(0) if head is None else heads[head]), rows, cols

    def sample(
        self, prompts: str | list[str] = "", *, max_new: int = 200, temperature: float = 1.0,
        top_k: int = 0, top_p: float = 1.0, seed: int = 1, keep_last: bool = False,
    ) -> list[str]:  # fmt: skip
        """Continue each prompt of a language-model run (a string is one prompt; "" starts
        from a line break), or sample a translation of each source of a translation run ->
        the new text of each, in order. KV-cached, all prompts in one batch; the same seed
        gives the same text (`atento sample` is this, streamed)."""
        p = self.predictor.require("sample")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        options = SampleOptions(max_new=max_new, temperature=temperature, top_k=top_k,
                                top_p=top_p, seed=seed, keep_last=keep_last)  # fmt: skip
        return [p.decode(row) for row in p.sample(prompts, options)]


def _sentences(sentences: str | list[str]) -> list[str]:
    sentences = [sentences] if isinstance(sentences, str) else list(sentences)
    if not sentences:
        raise AtentoError("no sentences to translate")
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise AtentoError(f"sentence {i} is not a string: {type(s).__name__}")
        if not s.strip():
            raise AtentoError(f"sentence {i} is empty")
    return sentences


def load(run_dir: str | Path, which: str = "best", *, device: str | None = None) -> Model:
    """Load a run directory written by `atento train` (its best checkpoint, or `which="last"`)
    onto `device` (default: the run's `runtime.device`); AtentoError when it is not one."""
    return Model(load_run(run_dir, which, device=device))
