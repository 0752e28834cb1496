"""experiments/sst2_learning_curve.py without training: its labelled subsets (nested across
sizes, seeded, a plain random sample: not label-balanced), and the table and plot it writes
from a JSONL of results, also through the command line (--summarize starts no run)."""

import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def _experiment():
    sys.path.insert(0, str(EXPERIMENTS))  # the script imports its sibling cls_common
    path = EXPERIMENTS / "sst2_learning_curve.py"
    spec = importlib.util.spec_from_file_location("sst2_learning_curve", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


curve = _experiment()


def test_subsets_are_nested_seeded_and_exact():
    small, large = curve.subset_rows(1000, 50, seed=1), curve.subset_rows(1000, 200, seed=1)
    assert len(small) == len(set(small)) == 50 and len(large) == len(set(large)) == 200
    assert set(small) <= set(large)  # nested: a seed's 50 rows are among its 200
    assert small == sorted(small) and all(0 <= i < 1000 for i in large)
    assert curve.subset_rows(1000, 50, seed=1) == small  # seeded
    assert curve.subset_rows(1000, 50, seed=2) != small
    assert curve.subset_rows(1000, 1000, seed=3) == list(range(1000))
    with pytest.raises(SystemExit, match="between 1 and the 1000"):
        curve.subset_rows(1000, 1001, seed=1)


def test_write_subset_copies_the_chosen_rows_under_the_header(tmp_path):
    rows = [f"sentence {i}\t{int(i < 10)}" for i in range(40)]  # 10 positive, 30 negative
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    out = curve.write_subset(train, 20, seed=5, out=tmp_path / "sub" / "n20.tsv")
    lines = out.read_text().splitlines()
    assert lines[0] == "sentence\tlabel"
    assert lines[1:] == [rows[i] for i in curve.subset_rows(40, 20, seed=5)]
    assert curve.write_subset(train, 40, seed=5, out=tmp_path / "all.tsv") == train  # all rows
    # not label-balanced: the share of positives follows the sample, it is not forced to 1/2
    shares = {sum(i < 10 for i in curve.subset_rows(40, 20, seed=s)) for s in range(20)}
    assert len(shares) > 1


def _row(arm, labelled, seed, accuracy):
    row = {"arm": arm, "labelled": labelled, "seed": seed, "accuracy": accuracy, "steps": 100,
           "minutes": 10.0, "machine": "test cpu"}  # fmt: skip
    if arm == "pretrained":
        row["pretrain"] = {"run": "runs/x/mlm", "minutes": 60, "steps": 9000, "accuracy": 0.4}
    return row


ROWS = [
    _row("pretrained", 500, 1, 0.70), _row("pretrained", 500, 2, 0.74),
    _row("pretrained", 500, 3, 0.72), _row("scratch", 500, 1, 0.60),
    _row("scratch", 2000, 1, 0.66), _row("bow", 500, 1, 0.65), _row("bow", 56256, 1, 0.812),
]  # fmt: skip


def test_summary_has_mean_sd_and_range_per_arm_and_size():
    table = curve.summary(ROWS)
    line = next(x for x in table.splitlines() if x.startswith("pretrained") and " 500 " in x)
    sd = statistics.stdev([0.70, 0.74, 0.72])  # 0.02
    assert f"0.7200 +- {sd:.4f}" in line and "0.7000..0.7400" in line and " 3 " in line
    assert "scratch" in table and "   2000  1  0.6600 +- 0.0000" in table
    assert "bow" in table and "56256" in table
    assert "pretraining (runs/x/mlm): 60 min, 9000 updates" in table
    assert "machine: test cpu" in table


def test_summarize_writes_table_and_plot_from_the_jsonl(tmp_path):
    out = tmp_path / "curve"
    out.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    cmd = [sys.executable, str(EXPERIMENTS / "sst2_learning_curve.py"), "--summarize",
           "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == out.with_suffix(".txt").read_text()
    assert "0.7200 +- 0.0200" in proc.stdout
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert curve.read_results(out.with_suffix(".jsonl")) == ROWS  # nothing appended


def test_bad_sizes_are_one_line_errors():
    with pytest.raises(SystemExit):
        curve.parse_args(["--sizes", "500", "many"])


def test_a_jsonl_of_another_budget_is_refused():
    args = curve.parse_args(["--minutes", "5", "--pretrain-minutes", "60", "--out", "x/c"])
    with pytest.raises(SystemExit, match="x/c.jsonl holds runs of budget 10 min / pretraining"):
        curve.check_budgets(ROWS, args)
    curve.check_budgets(ROWS, curve.parse_args(["--pretrain-minutes", "60"]))  # the same: fine
    steps = curve.parse_args(["--steps", "800", "--pretrain-steps", "5000"])
    with pytest.raises(SystemExit, match="budget 10 min / pretraining 60 min"):
        curve.check_budgets(ROWS, steps)


def test_a_budget_in_steps_sets_no_time_limit_and_is_checked():
    assert curve.budget(10.0, 0) == ["train.max_minutes=10.0"]
    assert curve.budget(10.0, 800) == ["train.max_steps=800", "train.max_minutes=0"]
    args = curve.parse_args(["--steps", "800", "--pretrain-steps", "5000"])
    rows = [{**r, "budget": "800 steps"} for r in ROWS]
    for r in rows:
        if r.get("pretrain"):
            r["pretrain"] = {**r["pretrain"], "budget": "5000 steps"}
    curve.check_budgets(rows, args)  # the same budgets: fine
    with pytest.raises(SystemExit, match="budget 800 steps / pretraining 5000 steps"):
        curve.check_budgets(rows, curve.parse_args(["--steps", "900", "--pretrain-steps", "5000"]))
    assert " 800 steps " in curve.summary(rows)
    assert "pretraining (runs/x/mlm): 5000 steps, 9000 updates" in curve.summary(rows)


def test_dev_split_holds_out_whole_sentences_and_all_their_phrases(tmp_path):
    rows = ["a great film\t1", "great film\t1", "a great\t1", "film\t1",  # one sentence
            "a dull plot twist\t0", "dull plot\t0", "plot\t0",  # another
            "sad ending\t0", "ending\t0", "film noir fans\t1"]  # fmt: skip
    assert curve.full_sentences(rows) == ["a dull plot twist", "a great film", "film noir fans",
                                          "sad ending"]  # fmt: skip
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    dev_train, dev = curve.dev_split(train, 1, seed=0, out_dir=tmp_path / "dev")
    held = dev.read_text().splitlines()
    assert held[0] == "sentence\tlabel" and len(held) == 2
    sentence = curve.row_text(held[1])
    kept = [curve.row_text(r) for r in dev_train.read_text().splitlines()[1:]]
    # nothing inside the held-out sentence stays in training; everything else does
    assert not set(kept) & curve.spans(sentence)
    assert len(kept) == len(rows) - sum(curve.row_text(r) in curve.spans(sentence) for r in rows)
    assert curve.dev_split(train, 1, seed=0, out_dir=tmp_path / "again")[1].read_text() == \
        dev.read_text()  # fmt: skip
    with pytest.raises(SystemExit, match="between 1 and the 4 sentences"):
        curve.dev_split(train, 4, seed=0, out_dir=tmp_path / "x")


def test_select_every_selects_on_the_dev_sentences_and_scores_the_validation_set(
    tmp_path, monkeypatch
):
    dev_dir = tmp_path / "dev"
    dev_dir.mkdir()
    (dev_dir / "train.tsv").write_text("sentence\tlabel\na fine film\t1\na dull one\t0\n")
    (dev_dir / "dev.tsv").write_text("sentence\tlabel\nsad ending\t0\n")
    calls = {}
    monkeypatch.setattr(
        curve,
        "train",
        lambda config, out, overrides, log, **kw: (
            calls.update(config=config, overrides=overrides)
            or {"steps": 10, "seconds": 1.0, "wall_seconds": 1.0}
        ),
    )
    monkeypatch.setattr(
        curve,
        "evaluate",
        lambda run, data, log: calls.update(scored=data) or {"accuracy": 0.5, "macro_f1": 0.5},
    )
    monkeypatch.setattr(curve, "bag_of_words", lambda tr, va, fmt: calls.update(bow=(tr, va)) or {
        "accuracy": 0.5})  # fmt: skip
    args = curve.parse_args(["--dev", "1", "--select-every", "5", "--runs", str(tmp_path),
                             "--steps", "10"])  # fmt: skip
    row = curve.run_one("scratch", 2, 1, args, None, print)
    valid = curve.DATA["sst2"][1]
    assert calls["scored"] == valid and row["valid"] == valid  # scored on the validation set
    dev = next(x for x in calls["overrides"] if x.startswith("data.valid="))
    assert Path(curve.ROOT / dev.split("=", 1)[1]).resolve() == (dev_dir / "dev.tsv").resolve()
    assert "train.valid_every=5" in calls["overrides"]
    assert "train.valid_every=0" not in calls["overrides"]
    assert row["selected_on"] == dev.split("=", 1)[1] and row["select_every"] == 5
    train = next(x for x in calls["overrides"] if x.startswith("data.train="))
    assert (curve.ROOT / train.split("=", 1)[1]).resolve() == (dev_dir / "train.tsv").resolve()
    row = curve.run_one("bow", 2, 1, args, None, print)  # the same rows, the same scoring
    assert calls["bow"][1] == valid and row["selected_on"] == dev.split("=", 1)[1]
    assert "checkpoints selected on" in curve.summary([row])
    plain = curve.parse_args(["--dev", "1", "--runs", str(tmp_path), "--steps", "10"])
    curve.run_one("scratch", 2, 1, plain, None, print)  # --dev alone: scored on the dev split
    assert Path(curve.ROOT / calls["scored"]).resolve() == (dev_dir / "dev.tsv").resolve()
    assert "train.valid_every=0" in calls["overrides"]


def test_select_every_needs_a_dev_split_and_pretrained_a_finished_run(tmp_path):
    with pytest.raises(SystemExit):
        curve.parse_args(["--select-every", "50"])
    args = curve.parse_args(["--pretrained", f"birnn_pretrained={tmp_path / 'none'}"])
    with pytest.raises(SystemExit, match="has no metrics.jsonl"):
        curve.pretrain("birnn_pretrained", args, print)
    for bad in ("mlm=runs/x", "pretrained", "pretrained="):
        with pytest.raises(SystemExit):
            curve.parse_args(["--pretrained", bad])


def test_a_reused_pretraining_is_read_back_and_not_budgeted(tmp_path):
    run = tmp_path / "mlm"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 4000, "accuracy": 0.3}) + "\n")
    args = curve.parse_args(["--pretrained", f"pretrained={run}", "--pretrain-steps", "800"])
    pre = curve.pretrain("pretrained", args, print)
    assert pre["run"] == str(run) and pre["steps"] == 4000 and pre["reused"]
    assert pre["budget"] == "4000 steps" and pre["accuracy"] == 0.3
    rows = [{**_row("pretrained", 500, 1, 0.7), "pretrain": pre}]
    curve.check_budgets(rows, args)  # its own budget is not this call's 800: fine


def test_each_pretrained_arm_fine_tunes_its_own_mlm_run(tmp_path, monkeypatch):
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\na fine film\t1\na dull one\t0\n")
    monkeypatch.setitem(curve.DATA, "sst2", (str(train), str(train), "sst2"))
    calls = []
    monkeypatch.setattr(curve, "train", lambda config, out, overrides, log, **kw: calls.append(
        (config, overrides)) or {"steps": 10, "seconds": 1.0, "wall_seconds": 1.0})  # fmt: skip
    monkeypatch.setattr(curve, "evaluate", lambda run, data, log: {"accuracy": 0.5,
                                                                    "macro_f1": 0.5})  # fmt: skip
    args = curve.parse_args(["--runs", str(tmp_path / "runs"), "--steps", "10"])
    pre = {"run": "runs/x/birnn_mlm", "steps": 80}
    row = curve.run_one("birnn_pretrained", 2, 1, args, pre, print)
    assert calls[-1][0] == "configs/sst2_birnn.yaml" and row["pretrain"] == pre
    assert "model.init_from=runs/x/birnn_mlm" in calls[-1][1]
    row = curve.run_one("birnn", 2, 1, args, None, print)  # from scratch: no init_from at all
    assert not any(x.startswith("model.init_from") for x in calls[-1][1]) and not row["pretrain"]
    assert curve.PRETRAIN["birnn_pretrained"] == ("configs/sst2_birnn_mlm.yaml", "birnn_mlm")


def test_an_out_with_dots_keeps_them(tmp_path):
    out = tmp_path / "dev_lr0.002"
    assert curve.named(out, ".jsonl") == tmp_path / "dev_lr0.002.jsonl"
    curve.write_reports(ROWS, out)
    assert (tmp_path / "dev_lr0.002.txt").is_file() and (tmp_path / "dev_lr0.002.png").is_file()
