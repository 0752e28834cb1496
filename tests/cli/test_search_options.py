"""The one rule set of the decoding options (atento.options), as each front end spells it."""

from __future__ import annotations

import io

import pytest

import atento
from atento.cli.main import main
from atento.config import SearchConfig
from atento.options import OptionError, SampleOptions, SearchOptions


def test_an_unset_nbest_is_the_runs_clamped_to_the_beam():
    run = SearchConfig(beam=5, nbest=3, alpha=0.6)
    assert SearchOptions().resolve(run).nbest == 3
    assert SearchOptions(beam=2).resolve(run).nbest == 2
    assert SearchOptions(beam=1).resolve(run).nbest == 1
    assert SearchOptions(beam=4, nbest=4).resolve(run).nbest == 4
    with pytest.raises(OptionError) as exc:
        SearchOptions(beam=2, nbest=3).resolve(run)  # asked for: not clamped, refused
    assert exc.value.field == "nbest" and str(exc.value) == (
        "nbest must be between 1 and the beam width 2, got 3"
    )


@pytest.mark.parametrize(
    ("options", "field"),
    [(dict(beam=0), "beam"), (dict(alpha=-0.5), "alpha"), (dict(batch_size=0), "batch_size"),
     (dict(workers=0), "workers"), (dict(precision="fp8"), "precision")],
)  # fmt: skip
def test_each_search_rule_names_its_field(options, field):
    with pytest.raises(OptionError) as exc:
        SearchOptions(**options).resolve(SearchConfig())
    assert exc.value.field == field


@pytest.mark.parametrize(
    ("options", "field"),
    [(dict(max_new=0), "max_new"), (dict(temperature=-1), "temperature"), (dict(top_k=-1), "top_k"),
     (dict(top_p=0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(num=0), "num")],
)  # fmt: skip
def test_each_sampling_rule_names_its_field(options, field):
    with pytest.raises(OptionError) as exc:
        SampleOptions(**options).check()
    assert exc.value.field == field


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--alpha", "-0.5"], "--alpha must be >= 0, got -0.5"),
     (["--beam", "0"], "--beam must be at least 1, got 0"),
     (["--beam", "2", "--nbest", "3"], "--nbest must be between 1 and the beam width 2, got 3"),
     (["--batch-size", "0"], "--batch-size must be at least 1, got 0")],
)  # fmt: skip
def test_the_command_line_spells_the_field_as_its_flag(toy_run, args, message, capsys,
                                                       monkeypatch):  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO("9 april 1974\n"))
    assert main(["translate", str(toy_run), *args]) == 2
    assert capsys.readouterr().err.strip() == f"atento translate: error: {message}"


def test_the_api_spells_the_field_as_its_keyword(toy_run):
    m = atento.load(toy_run)
    with pytest.raises(OptionError, match="^alpha must be >= 0, got -1"):
        m.translate("9 april 1974", alpha=-1)
    (t,) = m.translate("9 april 1974", beam=1)  # the run's nbest clamped to the beam
    assert len(t.nbest) == 1
