"""Image captioning (`task: caption`): frozen image features in, the attention decoder's
cross-entropy plus the doubly stochastic attention penalty (Xu et al. 2015, Eq. 14) as the
loss, corpus BLEU-4 of greedy captions on the validation images picks the best checkpoint.

    data:
      corpus: flickr8k            # flickr8k (images/, captions.txt, train.txt, dev.txt) | tsv
      dir: ../shared/data/flickr8k
      tokenizer: word             # lower-cased words seen >= min_count times | sentencepiece
      min_count: 5
      attention_penalty: 1.0      # lambda of the doubly stochastic regulariser

An example is (image, one of its captions): every reference caption of a training image is a
training target. Image features come from `atento.captioning.cache` (extracted once, with a
progress bar) and are read from one fp16 file per split (`PackedFeatures`), a batch's rows at a
time: the features are not held in the process's memory. Decoding sources are the images'
feature grids (P, C); `source_collate` stacks them with an all-true mask, and everything
else (greedy and beam search, scoring, search-error analysis) is the translation code as is.

With `model.finetune_blocks: N > 0` the cached "features" are the frozen encoder's activations
at the cut before its last N blocks, and the model's encoder tail turns them into regions
(`atento.models.captioning`): every path here, training and decoding alike, reads the cache
through `feature_cache`, so a run always gets the activations its model expects.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from atento.captioning.data import CaptionSet, read_flickr8k, read_tsv
from atento.config import check
from atento.data.batching import Movable, TokenBatchSampler, _pad, collate_features
from atento.data.tokenizers import Tokenizer, build_tokenizer
from atento.data.vocab import BOS_ID, EOS_ID
from atento.errors import AtentoError, warn
from atento.inference import Translator
from atento.models.base import DecodeOptions
from atento.options import SearchOptions
from atento.outputs import write_text
from atento.predictors.caption import CaptionPredictor
from atento.runtime import Placement
from atento.search.step import SearchStats
from atento.tasks.base import LossOutput, Selection, Task, teacher_forced_loss
from atento.training.loss import sequence_loss
from atento.training.metrics import caption_bleu

if TYPE_CHECKING:
    from atento.captioning.cache import FeatureCache, PackedFeatures


@dataclass
class CaptionDataConfig:
    """The data section of `task: caption` (module doc)."""

    corpus: str = "flickr8k"  # flickr8k | tsv
    dir: str = ""  # flickr8k: the folder with images/, captions.txt and the split lists
    train_split: str = "train"  # flickr8k: {split}.txt lists the split's images
    valid_split: str = "dev"
    images: str = ""  # tsv: the images folder (file names in the TSV are relative to it)
    train_tsv: str = ""  # tsv: file<TAB>caption lines (several per image allowed)
    valid_tsv: str = ""
    strict: bool = False  # an image named but missing or unreadable: error (else skipped)
    tokenizer: str = "word"  # word (lower-cased words) | sentencepiece
    min_count: int = 5  # word: rarer words are <unk>
    vocab_size: int = 4000  # sentencepiece
    max_len: int = 30  # training captions longer than this (tokens) are left out
    max_train_images: int = 0  # 0 = all; > 0 keeps the first N (quick experiments)
    cache: str = ""  # feature cache folder; empty = $ATENTO_CACHE/features or ~/.cache/atento
    attention_penalty: float = 1.0  # lambda * sum_i (1 - sum_t alpha_ti)^2, Xu et al. Eq. 14

    def validate(self, cfg: Any) -> None:
        check(self.corpus in ("flickr8k", "tsv"), cfg, "data.corpus", "flickr8k, tsv")
        check(self.tokenizer in ("word", "sentencepiece"), cfg, "data.tokenizer",
              "word, sentencepiece")  # fmt: skip
        check(self.min_count >= 1, cfg, "data.min_count", "at least 1")
        check(self.max_len >= 1, cfg, "data.max_len", "at least 1")
        check(self.attention_penalty >= 0, cfg, "data.attention_penalty", "0 or more")
        if self.corpus == "flickr8k" and not self.dir:
            raise AtentoError("config: data.corpus=flickr8k needs data.dir (the Flickr8k folder)")
        if self.corpus == "tsv" and not (self.train_tsv and self.images):
            raise AtentoError("config: data.corpus=tsv needs data.train_tsv and data.images")


@dataclass
class CaptionBatch(Movable):
    """features (B, P, C); tgt_in = BOS + y, tgt_out = y + EOS (B, T); tgt_mask (B, T)."""

    features: Tensor
    feature_mask: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    tgt_mask: Tensor
    n_tgt_tokens: int

    @property
    def sources(self) -> tuple[Tensor, Tensor]:
        """What the model encodes: (features, feature_mask)."""
        return self.features, self.feature_mask


def caption_batch(features: Tensor, captions: Sequence[Sequence[int]]) -> CaptionBatch:
    """Features (B, P, C) and caption ids (no BOS / EOS) -> a teacher-forcing batch."""
    tgt_in, _ = _pad([[BOS_ID, *c] for c in captions])
    tgt_out, tgt_mask = _pad([[*c, EOS_ID] for c in captions])
    features = features.float()
    mask = torch.ones(features.shape[:2], dtype=torch.bool)
    return CaptionBatch(features, mask, tgt_in, tgt_out, tgt_mask, int(tgt_mask.sum()))


class CaptionTask(Task):
    name = "caption"
    data_config = CaptionDataConfig
    predictor = CaptionPredictor
    architectures = ("show_attend_tell",)
    selection = Selection("bleu", higher_is_better=True)  # BLEU-4 of greedy captions

    # ---------------------------------------------------------------- data
    def read_split(self, which: str) -> CaptionSet:
        """`train` or `valid` of the config, or a Flickr8k split name (e.g. `dev`)."""
        data = self.cfg.data
        if data.corpus == "tsv":
            tsv = {"train": data.train_tsv, "valid": data.valid_tsv}.get(which)
            if not tsv:
                raise AtentoError(f"this run has no {which} TSV (data.{which}_tsv)")
            return read_tsv(tsv, data.images, strict=data.strict)
        split = {"train": data.train_split, "valid": data.valid_split}.get(which, which)
        return read_flickr8k(data.dir, split, strict=data.strict)

    @property
    def finetune_blocks(self) -> int:
        return getattr(self.cfg.model, "finetune_blocks", 0)

    def feature_cache(self) -> FeatureCache:
        """The run's feature cache: the final map's regions for a frozen encoder, else the
        activations at the cut before the `model.finetune_blocks` trained blocks."""
        from atento.captioning.cache import FeatureCache

        return FeatureCache(self.cfg.data.cache or None, finetune_blocks=self.finetune_blocks)

    def image_features(
        self, paths: Sequence[str | Path], *, progress: bool = False
    ) -> tuple[list[Tensor | None], dict[int, str]]:
        """The model's sources for image files (`atento caption`, `attention`, the API): one
        (P, C) fp16 tensor each (None where unreadable) and {index: error}."""
        return self.feature_cache().features(paths, progress=progress)

    def features(self, images: Sequence[Path], *, what: str) -> tuple[PackedFeatures, list[int]]:
        """Cached features of `images` as one fp16 file of N' rows (P, C), read on demand
        (`PackedFeatures`: feats[rows] -> (len(rows), P, C)), and the indices of the images
        they belong to (unreadable ones skipped with a count, or an error if strict)."""
        feats, kept, errors = self.feature_cache().packed(
            images, progress=sys.stderr.isatty(), strict=self.cfg.data.strict
        )
        if errors:
            warn(f"{what}: {len(errors)} unreadable image(s) skipped")
        if feats is None:
            raise AtentoError(f"{what}: no readable image")
        return feats, kept

    def prepare(self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None) -> None:
        data = self.cfg.data
        train = self.read_split("train").head(data.max_train_images)
        if tokenizers is None:
            tokenizers = {"tgt": self._build_tokenizer(train, run_dir)}
        self.tokenizers = tokenizers
        tok = tokenizers["tgt"]
        self.train_feats, kept = self.features(train.images, what="training images")
        self.train_examples: list[tuple[int, list[int]]] = []
        dropped = 0
        for row, i in enumerate(kept):
            for caption in train.captions[i]:
                ids = tok.encode(caption)
                if 1 <= len(ids) <= data.max_len:
                    self.train_examples.append((row, ids))
                else:
                    dropped += 1
        if not self.train_examples:
            raise AtentoError("no training captions left (all empty or over data.max_len)")
        if dropped:
            self.log(f"dropped {dropped} empty or over-long training captions "
                     f"(data.max_len={data.max_len})")  # fmt: skip
        valid = self.read_split("valid").head(self.cfg.train.valid_sentences)
        self.valid_feats, kept = self.features(valid.images, what="validation images")
        self.valid_refs = [valid.captions[i] for i in kept]
        self.sampler = TokenBatchSampler(
            [(1, len(ids)) for _, ids in self.train_examples],
            batch_tokens=self.cfg.train.batch_tokens, shuffle=True, seed=self.cfg.train.seed,
        )  # fmt: skip

    def _build_tokenizer(self, train: CaptionSet, run_dir: Path | None) -> Tokenizer:
        data = self.cfg.data
        texts = [c for refs in train.captions for c in refs]
        return build_tokenizer(data.tokenizer, texts, vocab_size=data.vocab_size,
                               min_count=data.min_count, run_dir=run_dir, name="tgt")  # fmt: skip

    def model_sizes(self) -> dict[str, int]:
        from atento.captioning.encoder import FEATURE_SIZE

        return {"tgt_vocab": self.tokenizers["tgt"].vocab_size, "feature_size": FEATURE_SIZE}

    def describe(self) -> str:
        n, encoder = self.finetune_blocks, "frozen encoder"
        if n:
            shape = "x".join(map(str, self.train_feats.shape[1:]))
            encoder = (f"encoder's last {n} block(s) + head fine-tuned (lr x "
                       f"{self.cfg.model.finetune_lr_scale:g}) on cached {shape} activations "
                       f"at the cut")  # fmt: skip
        return (
            f"{len(self.train_feats):,} training images ({len(self.train_examples):,} captions), "
            f"{len(self.valid_feats):,} validation images, vocabulary "
            f"{self.tokenizers['tgt'].vocab_size}; {encoder}"
        )

    # ---------------------------------------------------------------- training
    def collate(self, indices: list[int]) -> CaptionBatch:
        rows = torch.tensor([self.train_examples[i][0] for i in indices])
        return caption_batch(self.train_feats[rows], [self.train_examples[i][1] for i in indices])

    def count(self, batch: CaptionBatch) -> int:
        return batch.n_tgt_tokens

    def forward(self, model: nn.Module, batch: CaptionBatch) -> tuple[Tensor, Tensor | None]:
        real = batch.tgt_mask  # the output layer and the loss skip padding
        options = DecodeOptions(attention=self.cfg.data.attention_penalty > 0)
        return model(batch.features, batch.feature_mask, batch.tgt_in, select=real,
                     options=options)  # fmt: skip

    def loss(self, outputs: tuple[Tensor, Tensor | None], batch: CaptionBatch) -> LossOutput:
        """Summed cross-entropy + lambda * sum_b sum_i (1 - sum_t alpha_bti)^2 (Eq. 14); both
        are sums over the batch, so normalising by the token count keeps the paper's ratio."""
        from atento.models.captioning import doubly_stochastic_penalty

        logits, weights = outputs
        targets = batch.tgt_out[batch.tgt_mask]
        loss = sequence_loss(logits, targets, label_smoothing=self.cfg.train.label_smoothing)
        extras = {}
        lam = self.cfg.data.attention_penalty
        if lam > 0 and weights is not None:
            penalty = lam * doubly_stochastic_penalty(weights, batch.tgt_mask)
            loss = loss + penalty
            extras["attention_penalty"] = penalty.detach()
        return LossOutput(loss, extras)

    # ---------------------------------------------------------------- decoding
    def translator(self, model: nn.Module, placement: Placement) -> Translator:
        """A `Translator` whose sources are image feature grids (P, C); word captions never
        contain UNK unless `search.ban_unk: false` says so."""
        tok, search = self.tokenizers["tgt"], self.cfg.search
        if search.ban_unk is None:
            search = replace(search, ban_unk=self.cfg.data.tokenizer == "word")
        return Translator(model, tok, tok, search, placement, collate=collate_features)

    def validate(self, model: nn.Module, placement: Placement) -> dict[str, float]:
        """Teacher-forced loss / perplexity over every reference, and BLEU-1..4 of greedy
        captions of the validation images against all their references."""
        tok = self.tokenizers["tgt"]
        pairs = [(i, tok.encode(c)) for i, refs in enumerate(self.valid_refs) for c in refs]
        pairs = [(i, ids) for i, ids in pairs if ids]
        chunks = (pairs[start : start + 128] for start in range(0, len(pairs), 128))
        batches = (caption_batch(self.valid_feats[torch.tensor([i for i, _ in chunk])],
                                 [ids for _, ids in chunk]) for chunk in chunks)  # fmt: skip
        metrics = teacher_forced_loss(model, batches, placement.device)
        search = placement.with_precision(self.cfg.search.precision, key="search.precision")
        # workers=1: no decoding threads' arenas kept by the training process (as translation)
        translator = self.translator(model, search).with_search(beam=1, nbest=1, workers=1)
        hyps = []  # a few whole batches' rows read at a time: the same batches as one call
        block = 4 * translator.search.batch_size
        for start in range(0, len(self.valid_feats), block):
            hyps += translator.translate_ids(list(self.valid_feats[start : start + block]))
        scores = caption_bleu([tok.decode(h[0].tokens) for h in hyps], self.valid_refs)
        b1, b2, b3, b4 = scores.bleu
        return {**metrics, "bleu": b4, "bleu1": b1, "bleu2": b2, "bleu3": b3}

    def format_metrics(self, metrics: dict[str, float]) -> str:
        return (
            f"valid loss {metrics['loss']:.3f} ppl {metrics['ppl']:.2f} BLEU-1..4 "
            f"{metrics['bleu1']:.1f}/{metrics['bleu2']:.1f}/{metrics['bleu3']:.1f}/"
            f"{metrics['bleu']:.1f}"
        )

    # ---------------------------------------------------------------- evaluate
    @classmethod
    def add_evaluate_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("captioning runs")
        group.add_argument("--split", help="a split of the run's data (default: its validation "
                           "split; Flickr8k: train, dev)")  # fmt: skip
        group.add_argument("--captions", help="TSV of file<TAB>caption (with --images)")
        group.add_argument("--images", help="folder the --captions file names are relative to")
        group.add_argument("--strict", action="store_true",
                           help="an image named but missing or unreadable is an error")  # fmt: skip
        group.add_argument("--no-meteor", action="store_true",
                           help="skip coco-caption's METEOR (a Java process: ~1.2 GB, tens of "
                           "seconds to load its paraphrase table)")  # fmt: skip

    def evaluation_set(self, args: argparse.Namespace) -> tuple[CaptionSet, str]:
        """The images and references `evaluate` / `search-errors` / `beam-sweep` read."""
        if getattr(args, "strict", False):
            self.cfg.data.strict = True
        if getattr(args, "captions", None):
            if not getattr(args, "images", None):
                raise AtentoError("--captions needs --images FOLDER")
            return read_tsv(args.captions, args.images, strict=self.cfg.data.strict), args.captions
        split = getattr(args, "split", None) or "valid"
        return self.read_split(split), split

    def evaluate(self, run: Any, args: argparse.Namespace) -> dict[str, Any]:
        """Caption the split's images (beam, alpha) and score BLEU-1..4 (+ chrF) against all
        their references with sacreBLEU, and coco-caption's BLEU-1..4, CIDEr-D and METEOR
        (`atento.analysis.coco_caption`)."""
        from atento.analysis.coco_caption import coco_caption_scores

        images, name = self.evaluation_set(args)
        feats, kept = self.features(images.images, what=name)
        refs = [images.captions[i] for i in kept]
        translator = CaptionPredictor(run).translator(SearchOptions.of(args))
        start = time.perf_counter()
        progress = not args.json and sys.stderr.isatty()
        stats = SearchStats()  # how often the banned UNK would have been chosen
        hyps = translator.translate_ids(list(feats), progress=progress, stats=stats)
        seconds = time.perf_counter() - start
        outputs = [run.tgt_tok.decode(h[0].tokens) for h in hyps]
        scores = caption_bleu(outputs, refs)
        b1, b2, b3, b4 = scores.bleu
        report = {
            "bleu": b4, "bleu1": b1, "bleu2": b2, "bleu3": b3, "bleu4": b4,
            "chrf": scores.chrf, "split": name, "images": len(outputs),
            "sentences": len(outputs), "references": sum(len(r) for r in refs),
            "skipped": images.skipped + len(images) - len(kept),
            "seconds": round(seconds, 3),
            "sentences_per_second": round(len(outputs) / max(seconds, 1e-9), 2),
            "beam": translator.search.beam, "alpha": translator.search.alpha,
            "precision": translator.placement.precision, "bleu_signature": scores.signature,
            "ban_unk": bool(translator.search.ban_unk), "unk_banned_steps": stats.unk_banned_steps,
        }  # fmt: skip
        meteor = not getattr(args, "no_meteor", False)
        report.update(coco_caption_scores(outputs, refs, meteor=meteor).report())
        if getattr(args, "hyp_out", None):
            lines = [f"{images.images[i].name}\t{o}\n" for i, o in zip(kept, outputs, strict=True)]
            write_text(args.hyp_out, "".join(lines), option="--hyp-out")
        return report

    def print_report(self, report: dict[str, Any]) -> None:
        print(
            f"BLEU-1 {report['bleu1']:.2f}  BLEU-2 {report['bleu2']:.2f}  "
            f"BLEU-3 {report['bleu3']:.2f}  BLEU-4 {report['bleu4']:.2f}  "
            f"({report['bleu_signature']})"
        )
        meteor = (f"METEOR {report['meteor']:.2f}" if report["meteor"] is not None
                  else f"METEOR - ({report['meteor_note']})")  # fmt: skip
        print(
            f"coco-caption: BLEU-1 {report['coco_bleu1']:.2f}  BLEU-2 {report['coco_bleu2']:.2f}  "
            f"BLEU-3 {report['coco_bleu3']:.2f}  BLEU-4 {report['coco_bleu4']:.2f}  "
            f"CIDEr-D {report['cider_d']:.2f}  {meteor}"
        )
        print(
            f"{report['images']} images ({report['references']} references) of "
            f"{report['split']} in {report['seconds']:.1f} s, beam {report['beam']}, "
            f"alpha {report['alpha']}, {report['precision']}"
            + (f"; {report['skipped']} skipped" if report["skipped"] else "")
            + (f"; UNK banned, the best word at {report['unk_banned_steps']} step(s)"
               if report.get("ban_unk") else "")
        )  # fmt: skip
