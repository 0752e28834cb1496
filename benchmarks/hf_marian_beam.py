"""Beam-5 decoding of an opus-mt-shaped Marian: atento against transformers' `generate` and,
when a CTranslate2 interpreter is given, CTranslate2 converting the same directory.

    python benchmarks/hf_marian_beam.py --work /tmp/marian-bench            # the full shape
    python benchmarks/hf_marian_beam.py --work /tmp/marian-bench --quick    # a smoke run
    python benchmarks/hf_marian_beam.py --work W --ct2-python $PEERS/ct2-venv/bin/python

The model is opus-mt's shape (6 + 6 layers, d_model 512, 8 heads, FFN 2048, swish,
scale_embedding, static sinusoids, 58,101 tokens) with random weights built by transformers
from its config (nothing is downloaded): two SentencePiece models trained on Multi30k's
German and English training text (8,000 pieces each), a vocab.json numbering both sides'
pieces, filled up to 58,101 entries with unused pieces so the embedding and output layer have
opus-mt's size. The directory is imported with `atento import hf`.

Random weights never end a sentence at a natural length, so every system decodes exactly
`--length` pieces per sentence (default 20, about a Multi30k English sentence): atento with
`search.min_len = max_len = L`, transformers with `min_new_tokens = max_new_tokens = L` (its
forced EOS at the last position off), CTranslate2 with `min_decoding_length =
max_decoding_length = L`; the report gives each system's mean output length to show it. Each
system decodes the same 500 sources of test_2016_flickr.de in batches of 32 sentences, beam
5, length penalty 1, on `--threads` threads, after a warm-up batch, in each of `--precisions`
(default: fp32, and bf16 too where the CPU computes it natively): fp32 everywhere; bf16 is
atento's `--precision bf16` (autocast over the fp32 weights), transformers' model loaded with
`dtype=torch.bfloat16`, and CTranslate2's `compute_type=bfloat16` where this CPU supports it
(`ctranslate2.get_supported_compute_types("cpu")`; a row saying so where it does not).
CTranslate2's int8 is reported beside them. CTranslate2 needs an interpreter with
`ctranslate2` and `transformers` (its converter reads the directory with transformers):
`--ct2-python`; without it that part is skipped. Prints one JSON object: a result per system
and precision, and `ratios`: atento's output pieces/s over each peer's, fp32 against fp32
and bf16 against bf16 (and against CTranslate2's float32 and int8). Full size: about 8 minutes
on 2 cores with both precisions and CTranslate2. Time it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
MULTI30K = ROOT.parent / "shared" / "data" / "multi30k"

FULL = dict(d_model=512, layers=6, heads=8, ffn=2048, vocab=58101, pieces=8000, positions=512)
QUICK = dict(d_model=64, layers=2, heads=4, ffn=128, vocab=1000, pieces=300, positions=128)


def lines(name: str, n: int) -> list[str]:
    with gzip.open(MULTI30K / name, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for _, line in zip(range(n), f, strict=False)]


def train_spm(texts: list[str], pieces: int) -> bytes:
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=out, model_type="unigram",
        vocab_size=pieces, hard_vocab_limit=False, character_coverage=1.0, num_threads=2,
        minloglevel=2, unk_id=0, eos_id=1, bos_id=-1, pad_id=-1,
    )  # fmt: skip
    return out.getvalue()


def build(model_dir: Path, shape: dict) -> None:
    """The tokenizer files and a random MarianMTModel of `shape`, saved in `model_dir`."""
    import sentencepiece as spm
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    model_dir.mkdir(parents=True, exist_ok=True)
    protos = [train_spm(lines(f"train.{lang}.gz", 10000), shape["pieces"]) for lang in ("de", "en")]
    vocab = {"</s>": 0, "<unk>": 1}
    for name, proto in zip(("source.spm", "target.spm"), protos, strict=True):
        (model_dir / name).write_bytes(proto)
        sp = spm.SentencePieceProcessor(model_proto=proto)
        for i in range(sp.get_piece_size()):
            if not (sp.is_control(i) or sp.is_unknown(i)):
                vocab.setdefault(sp.id_to_piece(i), len(vocab))
    while len(vocab) < shape["vocab"] - 1:  # opus-mt's size: unused pieces fill it up
        vocab[f"<unused{len(vocab)}>"] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (model_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    size = len(vocab)
    config = MarianConfig(
        vocab_size=size, decoder_vocab_size=size, d_model=shape["d_model"],
        encoder_layers=shape["layers"], decoder_layers=shape["layers"],
        encoder_attention_heads=shape["heads"], decoder_attention_heads=shape["heads"],
        encoder_ffn_dim=shape["ffn"], decoder_ffn_dim=shape["ffn"], activation_function="swish",
        scale_embedding=True, max_position_embeddings=shape["positions"], pad_token_id=size - 1,
        decoder_start_token_id=size - 1, eos_token_id=0, forced_eos_token_id=0,
        num_beams=5, bad_words_ids=[[size - 1]],
    )  # fmt: skip
    torch.manual_seed(0)
    MarianMTModel(config).eval().save_pretrained(model_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Recommended: pip install sacremoses."
        MarianTokenizer(source_spm=str(model_dir / "source.spm"),
                        target_spm=str(model_dir / "target.spm"),
                        vocab=str(model_dir / "vocab.json")).save_pretrained(model_dir)  # fmt: skip


def report(name: str, seconds: float, outputs: list[list[int]]) -> dict:
    pieces = sum(len(o) for o in outputs)
    return {"system": name, "seconds": round(seconds, 3),
            "sentences_per_second": round(len(outputs) / seconds, 2),
            "output_pieces_per_second": round(pieces / seconds, 1),
            "mean_output_length": round(pieces / max(len(outputs), 1), 2),
            "outputs": outputs}  # fmt: skip


def time_atento(run_dir: Path, sources: list[str], args, precision: str) -> dict:
    from atento.rundir import load_run

    run = load_run(run_dir, device="cpu")
    translator = run.translator().with_precision(precision).with_search(
        beam=args.beam, nbest=1, alpha=1.0, batch_size=args.batch_size, workers=1,
        max_len_a=0.0, max_len_b=args.length, min_len=args.length,
    )  # fmt: skip
    ids = run.src_tok.encode_batch(sources)
    translator.translate_ids(ids[: args.batch_size])  # warm-up
    start = time.perf_counter()
    hyps = translator.translate_ids(ids)
    seconds = time.perf_counter() - start
    return report(f"atento {precision}", seconds, [h[0].tokens for h in hyps])


def time_transformers(model_dir: Path, sources: list[str], args, precision: str) -> dict:
    from transformers import MarianMTModel, MarianTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = MarianTokenizer.from_pretrained(model_dir)
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    model = MarianMTModel.from_pretrained(model_dir, dtype=dtype).eval()
    order = sorted(range(len(sources)), key=lambda i: len(tok.tokenize(sources[i])))
    batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    settings = dict(num_beams=args.beam, do_sample=False, length_penalty=1.0,
                    early_stopping=True, min_new_tokens=args.length,
                    max_new_tokens=args.length, forced_eos_token_id=None,
                    bad_words_ids=[[tok.pad_token_id]])  # fmt: skip

    def decode(rows: list[int]) -> list[list[int]]:
        batch = tok([sources[i] for i in rows], return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(**batch, **settings)
        specials = {tok.pad_token_id, tok.eos_token_id}
        return [[t for t in row[1:] if t not in specials] for row in out.tolist()]

    decode(batches[0])  # warm-up
    start = time.perf_counter()
    decoded = [decode(rows) for rows in batches]
    seconds = time.perf_counter() - start
    outputs: list[list[int]] = [[] for _ in sources]
    for rows, outs in zip(batches, decoded, strict=True):
        for i, o in zip(rows, outs, strict=True):
            outputs[i] = o
    return report(f"transformers {precision}", seconds, outputs)


CT2_SCRIPT = r"""
import json, sys, time
import ctranslate2
model, pieces_file, beam, length, batch, threads = sys.argv[1:7]
src = [line.split() for line in open(pieces_file, encoding="utf-8")]
supported = ctranslate2.get_supported_compute_types("cpu")
for ct in sys.argv[7].split(","):
    if ct not in supported:
        print(json.dumps({"system": "ctranslate2 " + ct, "skipped": "not supported on this CPU "
                          "(supported: " + ", ".join(sorted(supported)) + ")"}))
        continue
    tr = ctranslate2.Translator(model, device="cpu", compute_type=ct,
                                intra_threads=int(threads), inter_threads=1)
    kw = dict(beam_size=int(beam), max_batch_size=int(batch), batch_type="examples",
              min_decoding_length=int(length), max_decoding_length=int(length),
              length_penalty=1.0)
    tr.translate_batch(src[: int(batch)], **kw)
    t0 = time.perf_counter()
    res = tr.translate_batch(src, **kw)
    dt = time.perf_counter() - t0
    n = sum(len(r.hypotheses[0]) for r in res)
    print(json.dumps({"system": "ctranslate2 " + ct, "seconds": round(dt, 3),
                      "sentences_per_second": round(len(src) / dt, 2),
                      "output_pieces_per_second": round(n / dt, 1),
                      "mean_output_length": round(n / len(src), 2),
                      "version": ctranslate2.__version__}))
"""


def time_ct2(
    python: str, model_dir: Path, work: Path, sources: list[str], args, precisions: list[str]
) -> list[dict]:
    """Convert `model_dir` with CTranslate2's transformers converter and decode in `python`:
    float32 and int8, and bfloat16 when bf16 is among `precisions`."""
    compute_types = ["float32", "int8"] + (["bfloat16"] if "bf16" in precisions else [])
    from transformers import MarianTokenizer

    ct2_dir = work / "ct2"
    if not ct2_dir.exists():
        convert = (
            "import sys, ctranslate2; ctranslate2.converters.TransformersConverter("
            "sys.argv[1]).convert(sys.argv[2])"
        )  # what ct2-transformers-converter does
        subprocess.run([python, "-c", convert, str(model_dir), str(ct2_dir)], check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = MarianTokenizer.from_pretrained(model_dir)
    pieces = work / "sources.pieces"
    pieces.write_text("".join(" ".join(tok.tokenize(s) + ["</s>"]) + "\n" for s in sources),
                      encoding="utf-8")  # fmt: skip
    out = subprocess.run(
        [python, "-c", CT2_SCRIPT, str(ct2_dir), str(pieces), str(args.beam), str(args.length),
         str(args.batch_size), str(args.threads), ",".join(compute_types)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def ratios(results: list[dict], precisions: list[str]) -> dict:
    """atento's output pieces/s over each peer's: fp32 against fp32 peers, bf16 against bf16
    peers, each also against CTranslate2 float32 and int8."""
    speed = {r["system"]: r["output_pieces_per_second"] for r in results if "skipped" not in r}
    peers = {"fp32": ["transformers fp32", "ctranslate2 float32", "ctranslate2 int8"],
             "bf16": ["transformers bf16", "ctranslate2 bfloat16", "ctranslate2 float32",
                      "ctranslate2 int8"]}  # fmt: skip
    out = {}
    for p in precisions:
        for peer in peers[p]:
            if peer in speed:
                name = f"atento_{p}_vs_{peer.replace(' ', '_')}"
                out[name] = round(speed[f"atento {p}"] / speed[peer], 3)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", help="folder for the model directory and the run (default: a new "
                                  "temporary folder)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a tiny model and 16 sentences (smoke)")
    p.add_argument("--sentences", type=int, default=500)
    p.add_argument("--length", type=int, default=20, help="output pieces per sentence")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--precisions",
        nargs="+",
        choices=["fp32", "bf16"],
        help="default: fp32, and bf16 where the CPU computes it natively",
    )
    p.add_argument("--ct2-python", help="an interpreter with ctranslate2 and transformers")
    args = p.parse_args()
    from atento.runtime import cpu_features, native_bf16

    precisions = args.precisions or (["fp32", "bf16"] if native_bf16() else ["fp32"])
    shape = QUICK if args.quick else FULL
    if args.quick:
        args.sentences, args.length = min(args.sentences, 16), min(args.length, 8)
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="marian-bench-"))
    model_dir, run_dir = work / "model", work / "run"
    if not (model_dir / "config.json").exists():
        build(model_dir, shape)
    if not (run_dir / "checkpoint_best").exists():
        from atento.hf import import_hf

        import_hf(model_dir, run_dir)
    sources = lines("test_2016_flickr.de.gz", args.sentences)
    results, outputs = [], {}
    for precision in precisions:
        for timed in (time_atento(run_dir, sources, args, precision),
                      time_transformers(model_dir, sources, args, precision)):  # fmt: skip
            outputs[timed["system"]] = timed.pop("outputs")
            results.append(timed)
        # the same search at equal lengths: the same outputs in fp32; bf16 rounds differently
        mine, theirs = outputs[f"atento {precision}"], outputs[f"transformers {precision}"]
        results[-1]["same_outputs_as_atento"] = sum(
            a == b for a, b in zip(mine, theirs, strict=True)
        )
    if args.ct2_python:
        results += time_ct2(args.ct2_python, model_dir, work, sources, args, precisions)
    print(json.dumps({"shape": shape, "sentences": len(sources), "beam": args.beam,
                      "length": args.length, "batch_size": args.batch_size,
                      "threads": args.threads, "torch": torch.__version__, "cpu": cpu_features(),
                      "results": results, "ratios": ratios(results, precisions),
                      "work": str(work)}))  # fmt: skip


if __name__ == "__main__":
    main()
