"""Translation: parallel text in, label-smoothed cross-entropy, greedy BLEU picks the best.

Examples are (source ids, target ids) pairs without BOS / EOS (`atento.data.batching` adds them
when collating), batched by a padded-token budget with similar lengths together. Validation
reports the teacher-forced loss and perplexity and the sacreBLEU of greedy translations of the
validation set; the highest BLEU selects `checkpoint_best`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atento.data.batching import Batch, TokenBatchSampler, collate, collate_arrays, pair_lengths
from atento.data.corpus import load_split, train_source
from atento.data.lines import LinePolicy
from atento.data.parallel import encode_pairs, read_parallel
from atento.data.store import (
    ParallelData,
    default_workers,
    prepare_parallel,
    record_store,
    recorded_key,
)
from atento.data.tokenizers import Tokenizer
from atento.errors import AtentoError
from atento.models.base import length_limit
from atento.models.pretrained_seq2seq import load_pretrained_seq2seq
from atento.options import SearchOptions
from atento.outputs import write_text
from atento.predictors.decoding import TranslationPredictor
from atento.runtime import Placement
from atento.tasks.base import LossOutput, Selection, Task, teacher_forced_loss
from atento.tasks.translation_data import DataConfig
from atento.training.fused_output import OutputRows, fused_dtype
from atento.training.loss import sequence_loss
from atento.training.metrics import corpus_bleu, corpus_scores


class TranslationTask(Task):
    name = "translation"
    predictor = TranslationPredictor
    architectures = ("rnn", "transformer")
    data_config = DataConfig
    selection = Selection("bleu", higher_is_better=True)
    prepares_on_every_rank = True  # the corpus store: local rank 0 builds, the others wait

    def prepare_store(
        self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None, *,
        workers: int | None = None, verify: bool = False,
    ) -> ParallelData:  # fmt: skip
        """The training pairs' corpus store (found, waited for or built; `atento prepare`)."""
        data = self.cfg.data
        settings = {"tokenizer": data.tokenizer, "vocab_size": data.vocab_size,
                    "joint_vocab": data.joint_vocab, "tokenizer_sample": data.tokenizer_sample,
                    "seed": data.seed, "max_len": data.max_len}  # fmt: skip
        if tokenizers is None and getattr(self.cfg.model, "init_from", ""):
            tokenizers = load_pretrained_seq2seq(self.cfg).tokenizers  # `atento prepare`
        workers = workers or data.workers or default_workers()
        reuse = recorded_key(run_dir or self.run_dir)  # the run's store, on every rank
        return prepare_parallel(train_source(data), settings, tokenizers=tokenizers,
                                workers=workers, log=self.log, reuse=reuse,
                                verify=verify)  # fmt: skip

    def prepare(self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None) -> None:
        data = self.cfg.data
        self.pretrained = None
        if tokenizers is None and getattr(self.cfg.model, "init_from", ""):
            self.pretrained = load_pretrained_seq2seq(self.cfg)  # its tokenizers, its weights
            tokenizers = self.pretrained.tokenizers
            for role, tok in tokenizers.items():
                if run_dir is not None:
                    tok.save(run_dir, role)
        self.train = self.prepare_store(run_dir, tokenizers)
        record_store(run_dir, self.train.store)
        if tokenizers is None:  # the store's, trained on its sample: the run keeps a copy
            tokenizers = self.train.tokenizers
            if run_dir is not None:
                names = {"joint"} if tokenizers["src"] is tokenizers["tgt"] else {"src", "tgt"}
                for name in names:
                    tokenizers["src" if name == "joint" else name].save(run_dir, name)
        self.tokenizers = tokenizers
        src_tok, tgt_tok = tokenizers["src"], tokenizers["tgt"]
        if self.train.dropped:
            self.log(f"dropped {self.train.dropped} empty or over-long training pairs "
                     f"(data.max_len={data.max_len})")  # fmt: skip
        valid_raw = load_split(data, "valid")
        if self.cfg.train.valid_sentences > 0:
            valid_raw = valid_raw[: self.cfg.train.valid_sentences]
        self.valid_pairs, _ = encode_pairs(valid_raw, src_tok, tgt_tok, max_len=0)
        self.valid_refs = [t for s, t in valid_raw if src_tok.encode(s) and tgt_tok.encode(t)]
        self.sampler = TokenBatchSampler(
            self.train.lengths(), batch_tokens=self.cfg.train.batch_tokens,
            shuffle=True, seed=self.cfg.train.seed,
        )  # fmt: skip

    def model_sizes(self) -> dict[str, Any]:
        sizes: dict[str, Any] = {
            "src_vocab": self.tokenizers["src"].vocab_size,
            "tgt_vocab": self.tokenizers["tgt"].vocab_size,
            "pad_id": self.tokenizers["tgt"].search_ids()["pad_id"],
        }
        if getattr(self, "pretrained", None) is not None:
            sizes["pretrained"] = self.pretrained
        return sizes

    @property
    def special_ids(self) -> dict[str, int]:
        """What `batching.collate` adds: the source's EOS, the target's BOS and EOS."""
        ids = self.tokenizers["tgt"].search_ids()
        src_eos = self.tokenizers["src"].eos_id
        return {"src_eos": src_eos, "bos_id": ids["bos_id"], "eos_id": ids["eos_id"]}

    def describe(self) -> str:
        start = ""
        if getattr(self, "pretrained", None) is not None:
            start = f"; from {self.pretrained.run} (step {self.pretrained.step})"
        return f"{len(self.train):,} training pairs, {len(self.valid_pairs):,} validation{start}"

    def collate(self, indices: list[int]) -> Batch:
        src, tgt = self.train.src, self.train.tgt
        return collate_arrays([src.row(i) for i in indices], [tgt.row(i) for i in indices],
                              **self.special_ids)  # fmt: skip

    def count(self, batch: Batch) -> int:
        return batch.n_tgt_tokens

    def forward(self, model: nn.Module, batch: Batch) -> torch.Tensor | OutputRows:
        # the output layer and the loss skip padding
        args = (batch.src_ids, batch.src_mask, batch.tgt_in)
        dtype = fused_dtype(self.cfg.train.fused_output, model, batch.src_ids.device.type)
        if dtype is not None:  # train.fused_output: the loss applies the output layer by chunks
            h, _ = model(*args, select=batch.tgt_mask, hidden=True)
            weight, bias = getattr(model, "module", model).output_layer()
            return OutputRows(h, weight, bias, dtype)
        logits, _ = model(*args, select=batch.tgt_mask)
        return logits  # (N, V): the real target positions in row-major order

    def loss(self, outputs: torch.Tensor | OutputRows, batch: Batch) -> LossOutput:
        targets = batch.tgt_out[batch.tgt_mask]
        smoothing = self.cfg.train.label_smoothing
        if isinstance(outputs, OutputRows):
            return LossOutput(outputs.loss(targets, smoothing))
        return LossOutput(sequence_loss(outputs, targets, label_smoothing=smoothing))

    def validate(self, model: nn.Module, placement: Placement) -> dict[str, float]:
        """Teacher-forced loss / perplexity (fp32) and greedy BLEU on the validation set."""
        from atento.inference import Translator

        pairs, refs = self._valid_within(length_limit(model))
        sampler = TokenBatchSampler(
            pair_lengths(pairs), batch_tokens=self.cfg.train.batch_tokens, shuffle=False, seed=0
        )
        batches = (collate([pairs[i] for i in idx], **self.special_ids) for idx in sampler)
        metrics = teacher_forced_loss(model, batches, placement.device)
        search = placement.with_precision(self.cfg.search.precision, key="search.precision")
        translator = Translator(
            model, self.tokenizers["src"], self.tokenizers["tgt"], self.cfg.search, search
        )
        # on this thread (workers=1): decoding threads' malloc arenas and kernel caches stayed
        # in the training process (+160 MiB RSS at the first validation, issue 24)
        greedy = translator.with_search(beam=1, nbest=1, workers=1)
        hyps = greedy.translate_ids([s for s, _ in pairs])
        outputs = [self.tokenizers["tgt"].decode(h[0].tokens) for h in hyps]
        bleu = corpus_bleu(outputs, refs)
        return {**metrics, "bleu": bleu}

    def _valid_within(self, limit: int | None) -> tuple[list, list[str]]:
        """The validation pairs (and references) a model with a length `limit` can take;
        those beyond it (learned positions) are left out, with a note in the log once."""
        if limit is None:
            return self.valid_pairs, self.valid_refs
        keep = [i for i, (s, t) in enumerate(self.valid_pairs) if max(len(s), len(t)) <= limit]
        if len(keep) < len(self.valid_pairs) and not getattr(self, "_noted_limit", False):
            self._noted_limit = True
            self.log(
                f"validation: {len(self.valid_pairs) - len(keep)} pairs longer than the model's "
                f"{limit} pieces (model.max_positions) left out"
            )
        return [self.valid_pairs[i] for i in keep], [self.valid_refs[i] for i in keep]

    def format_metrics(self, metrics: dict[str, float]) -> str:
        return (
            f"valid loss {metrics['loss']:.3f} ppl {metrics['ppl']:.2f} BLEU {metrics['bleu']:.2f}"
        )

    # ---------------------------------------------------------------- evaluate
    @classmethod
    def add_evaluate_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("translation runs")
        group.add_argument("--src", help="source file (plain or .gz)")
        group.add_argument("--ref", help="reference file, line-aligned with --src")
        group.add_argument("--hyp-out", help="also write the hypotheses to this file")
        group.add_argument("--by-length", help="PNG file: BLEU by source length")
        group.add_argument("--buckets", help="--by-length edges (default 10,15,20,25,30,40)")

    def evaluate(self, run: Any, args: argparse.Namespace) -> dict[str, Any]:
        """Decode --src, score against --ref: sacreBLEU BLEU and chrF (+ BLEU by length)."""
        if not (args.src and args.ref):
            raise AtentoError("evaluating a translation run needs --src FILE and --ref FILE")
        edges = None
        if args.by_length:
            from atento.analysis.length import parse_edges

            edges = parse_edges(args.buckets or "10,15,20,25,30,40")
        predictor = TranslationPredictor(run)
        translator = predictor.translator(SearchOptions.of(args))
        policy = LinePolicy.of(args)
        pairs = read_parallel(args.src, args.ref, policy)
        if not pairs:
            raise AtentoError(f"empty input: {args.src} has no lines")
        sources, refs = [s for s, _ in pairs], [r for _, r in pairs]
        start = time.perf_counter()
        results = predictor.translate(
            sources, translator, policy, name=args.src,
            progress=not args.json and sys.stderr.isatty(),
        )  # fmt: skip
        seconds = time.perf_counter() - start
        # an empty source line (--on-empty emit-empty) has the empty output, scored as such
        outputs = [run.tgt_tok.decode(h[0].tokens) if h else "" for h in results]
        pieces = sum(len(h[0].tokens) for h in results if h)
        scores = corpus_scores(outputs, refs)
        report = {
            "bleu": scores.bleu,
            "chrf": scores.chrf,
            "sentences": len(pairs),
            "seconds": round(seconds, 3),
            "sentences_per_second": round(len(pairs) / max(seconds, 1e-9), 2),
            "output_pieces": pieces,
            "output_pieces_per_second": round(pieces / max(seconds, 1e-9), 1),
            "beam": translator.search.beam,
            "alpha": translator.search.alpha,
            "precision": translator.placement.precision,
            "bleu_signature": scores.bleu_signature,
            "chrf_signature": scores.chrf_signature,
        }
        if edges is not None:
            from atento.analysis.length import bleu_by_length, plot_bleu_by_length

            buckets = bleu_by_length(sources, outputs, refs, edges=edges)
            report["by_length"] = [b.to_json() for b in buckets]
            name = f"{run.path.name} (beam {translator.search.beam})"
            report["by_length_plot"] = str(plot_bleu_by_length({name: buckets}, args.by_length))
        if args.hyp_out:
            write_text(args.hyp_out, "".join(o + "\n" for o in outputs), option="--hyp-out")
        return report

    def print_report(self, report: dict[str, Any]) -> None:
        """The human-readable form of `evaluate`'s report."""
        print(f"BLEU {report['bleu']:.2f}  ({report['bleu_signature']})")
        print(f"chrF {report['chrf']:.2f}  ({report['chrf_signature']})")
        print(
            f"{report['sentences']} sentences in {report['seconds']:.1f} s "
            f"({report['sentences_per_second']} sent/s), beam {report['beam']}, "
            f"alpha {report['alpha']}, {report['precision']}"
        )
        for b in report.get("by_length", []):
            low, high = b["bounds"]
            print(f"  source {low}-{high or ''} words: BLEU {b['bleu']:.2f} (n={b['sentences']})")
        if "by_length_plot" in report:
            print(f"BLEU by length plot: {report['by_length_plot']}")
