"""The dates corpus: correct targets, varied formats and languages, disjoint seeded splits."""

from __future__ import annotations

import datetime as dt
import re
import time

from babel.dates import get_day_names, get_month_names

from atento.data.dates import (
    FIRST_DAY,
    LAST_DAY,
    dates_split_examples,
    dates_splits,
    generate_date_examples,
)


def _shape(text: str) -> str:
    """The written form with the value removed: digits -> 9, letters -> a."""
    return re.sub(r"[^\W\d_]+", "a", re.sub(r"\d", "9", text))


def test_targets_are_the_dates_written() -> None:
    examples = generate_date_examples(2000, seed=3)
    for ex in examples:
        assert dt.date.fromisoformat(ex.target) == ex.date
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", ex.target)
        assert FIRST_DAY <= ex.date <= LAST_DAY
        src = ex.source.lower()
        year_4, year_2 = str(ex.date.year), f"{ex.date.year % 100:02d}"
        assert year_4 in src or (year_2 in src and 1950 <= ex.date.year <= 2049), ex
        if "MMMM" in ex.pattern:
            assert get_month_names("wide", locale=ex.lang)[ex.date.month].lower() in src, ex
        if "EEEE" in ex.pattern:
            weekday = get_day_names("wide", locale=ex.lang)[ex.date.weekday()]
            assert weekday.lower() in src, ex
        if ex.pattern.startswith("{dd}.{mm}"):  # numeric, day first
            assert ex.source.startswith(f"{ex.date.day:02d}.{ex.date.month:02d}.")
    assert max(len(ex.source) for ex in examples) <= 40


def test_no_source_maps_to_two_dates() -> None:
    seen: dict[str, str] = {}
    for ex in generate_date_examples(20000, seed=11):
        assert seen.setdefault(ex.source, ex.target) == ex.target, ex.source


def test_formats_and_languages_are_varied() -> None:
    examples = generate_date_examples(2000, seed=5)
    assert len({(ex.lang, ex.pattern) for ex in examples}) >= 20
    assert len({_shape(ex.source) for ex in examples}) >= 20
    assert {"en", "fr", "de", "es", "num"} <= {ex.lang for ex in examples}
    assert {"as_is", "lower"} <= {ex.case for ex in examples}
    sources = " ".join(ex.source for ex in examples)
    assert re.search(r"\b\d{4}-\d{2}-\d{2}\b", sources)  # ISO-like input
    assert re.search(r"\b\d{2}\.\d{2}\.\d{2}\b", sources)  # 09.04.74


def test_seeded_and_fast() -> None:
    assert generate_date_examples(50, seed=1) == generate_date_examples(50, seed=1)
    assert generate_date_examples(50, seed=1) != generate_date_examples(50, seed=2)
    start = time.perf_counter()
    assert len(generate_date_examples(20000, seed=0)) == 20000
    assert time.perf_counter() - start < 2.0


def test_splits_disjoint_by_date_and_repeatable() -> None:
    splits = dates_split_examples(3000, 200, 300, seed=7)
    assert [len(splits[k]) for k in ("train", "valid", "test")] == [3000, 200, 300]
    dates = {k: {ex.date for ex in v} for k, v in splits.items()}
    assert not dates["train"] & dates["test"]
    assert not dates["train"] & dates["valid"]
    assert not dates["valid"] & dates["test"]
    assert len(dates["test"]) == 300 and len(dates["valid"]) == 200  # each date once

    pairs = dates_splits(3000, 200, 300, seed=7)
    assert pairs == dates_splits(3000, 200, 300, seed=7)
    assert pairs["test"] == [(ex.source, ex.target) for ex in splits["test"]]
    assert pairs["test"] != dates_splits(3000, 200, 300, seed=8)["test"]
    assert dates_splits(10, 200, 300, seed=7)["test"] == pairs["test"]  # n_train irrelevant
