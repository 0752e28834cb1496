"""Human-readable dates -> ISO `YYYY-MM-DD`: the generated corpus of `atento demo`.

    dates_splits(n_train=3, n_valid=0, n_test=0, seed=0)["train"]
    # [('10. Mai 1965', '1965-05-10'), ('Sonntag, 20. Juni 1915', '1915-06-20'), ...]

Dates are drawn from 1900-01-01 .. 2099-12-31 and written in many patterns, in English,
French, German, Spanish, Italian and Portuguese, with month and weekday names from Babel's
CLDR data (wide and abbreviated, with or without the abbreviation's dot) and varied case.

Every source has exactly one reading, so the target is a function of the source:
- all-numeric forms are day-first (`09/04/1974`, `9.4.74`) or year-first (`1974-04-09`);
  month-first appears only with a month name (`April 9, 1974`);
- two-digit years are used only for 1950..2049 (`74` is 1974, `12` is 2012).

`dates_splits` keeps train / valid / test disjoint by calendar date: a test date never
appears in the training set, in any format.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from dataclasses import dataclass

from babel.dates import get_day_names, get_month_names

from atento.errors import AtentoError

FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2099, 12, 31)
N_DAYS = (LAST_DAY - FIRST_DAY).days + 1
LANGS = ("en", "fr", "de", "es", "it", "pt")
NUMERIC_SHARE = 0.25  # fraction of examples written with digits only
_YY_FIRST, _YY_LAST = 1950, 2049  # the only years written with two digits

# Fields: d dd (day), m mm (month), yyyy yy, MMMM / MMM (wide / abbreviated month; MMMx
# has no dot),
# EEEE / EEE (wide / abbreviated weekday), ord (the language's ordinal day: 9th, 1er).
NUMERIC_PATTERNS = (
    "{dd}.{mm}.{yyyy}",
    "{d}.{m}.{yyyy}",
    "{dd}.{mm}.{yy}",
    "{d}.{m}.{yy}",
    "{dd}/{mm}/{yyyy}",
    "{d}/{m}/{yyyy}",
    "{dd}/{mm}/{yy}",
    "{dd}-{mm}-{yyyy}",
    "{yyyy}-{mm}-{dd}",
    "{yyyy}/{mm}/{dd}",
    "{yyyy}.{mm}.{dd}",
    "{yyyy}{mm}{dd}",
)
NAMED_PATTERNS: dict[str, tuple[str, ...]] = {
    "en": (
        "{MMMM} {d}, {yyyy}",
        "{MMMM} {d} {yyyy}",
        "{MMMM} {ord}, {yyyy}",
        "{d} {MMMM} {yyyy}",
        "{ord} {MMMM} {yyyy}",
        "the {ord} of {MMMM} {yyyy}",
        "{EEEE}, {d} {MMMM} {yyyy}",
        "{EEEE} {d} {MMMM} {yyyy}",
        "{EEEE}, {MMMM} {d}, {yyyy}",
        "{EEE} {d} {MMM} {yyyy}",
        "{EEE}, {MMM} {d}, {yyyy}",
        "{d} {MMM} {yyyy}",
        "{MMM} {d}, {yyyy}",
        "{MMM} {d} {yyyy}",
        "{dd}-{MMMx}-{yyyy}",
        "{MMM} {d} '{yy}",
    ),
    "fr": (
        "{ord} {MMMM} {yyyy}",
        "le {ord} {MMMM} {yyyy}",
        "{EEEE} {ord} {MMMM} {yyyy}",
        "{EEEE}, le {ord} {MMMM} {yyyy}",
        "{d} {MMM} {yyyy}",
        "{EEE} {d} {MMM} {yyyy}",
        "{dd} {MMMM} {yyyy}",
    ),
    "de": (
        "{d}. {MMMM} {yyyy}",
        "{dd}. {MMMM} {yyyy}",
        "am {d}. {MMMM} {yyyy}",
        "{EEEE}, {d}. {MMMM} {yyyy}",
        "{EEEE}, den {d}. {MMMM} {yyyy}",
        "{d}. {MMM} {yyyy}",
        "{EEE}, {d}. {MMM} {yyyy}",
        "{d}. {MMMM} {yy}",
    ),
    "es": (
        "{d} de {MMMM} de {yyyy}",
        "el {d} de {MMMM} de {yyyy}",
        "{EEEE}, {d} de {MMMM} de {yyyy}",
        "{EEEE} {d} de {MMMM} de {yyyy}",
        "{d} {MMM} {yyyy}",
        "{d}-{MMMx}-{yyyy}",
        "{d} de {MMMM} {yyyy}",
    ),
    "it": (
        "{d} {MMMM} {yyyy}",
        "{EEEE} {d} {MMMM} {yyyy}",
        "{EEEE}, {d} {MMMM} {yyyy}",
        "il {d} {MMMM} {yyyy}",
        "{d} {MMM} {yyyy}",
        "{EEE} {d} {MMM} {yyyy}",
    ),
    "pt": (
        "{d} de {MMMM} de {yyyy}",
        "{EEEE}, {d} de {MMMM} de {yyyy}",
        "{d} {MMM} {yyyy}",
        "{d}/{MMMx}/{yyyy}",
    ),
}
_CASES = ("as_is", "lower", "first_upper", "upper")
_CASE_WEIGHTS = (0.5, 0.3, 0.15, 0.05)


@dataclass(frozen=True)
class DateExample:
    """One generated example: `source` text, ISO `target`, and how the source was written."""

    source: str
    target: str
    date: dt.date
    lang: str  # "num" for all-numeric patterns
    pattern: str  # the template, e.g. "{EEEE}, {d}. {MMMM} {yyyy}"
    case: str  # as_is | lower | first_upper | upper


@dataclass(frozen=True)
class _Names:
    months: tuple[str, ...]  # 12 wide month names, January first
    months_abbr: tuple[str, ...]
    days: tuple[str, ...]  # 7 wide weekday names, Monday first (date.weekday() order)
    days_abbr: tuple[str, ...]


@functools.cache
def _names(lang: str) -> _Names:
    def months(width: str) -> tuple[str, ...]:
        names = get_month_names(width, "format", lang)
        return tuple(str(names[i]) for i in range(1, 13))

    def days(width: str) -> tuple[str, ...]:
        names = get_day_names(width, "format", lang)
        return tuple(str(names[i]) for i in range(7))

    return _Names(months("wide"), months("abbreviated"), days("wide"), days("abbreviated"))


def _ordinal(lang: str, day: int) -> str:
    if lang == "en":
        suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
        return f"{day}{suffix}"
    if lang == "fr":
        return "1er" if day == 1 else str(day)
    return str(day)


def _fields(date: dt.date, lang: str, rng: random.Random) -> dict[str, str]:
    """The values a pattern may use for `date` in `lang` (abbreviations keep their dot or not)."""
    fields = {
        "d": str(date.day),
        "dd": f"{date.day:02d}",
        "m": str(date.month),
        "mm": f"{date.month:02d}",
        "yyyy": str(date.year),
        "yy": f"{date.year % 100:02d}",
    }
    if lang != "num":
        names = _names(lang)
        keep_dot = rng.random() < 0.7
        month_abbr = names.months_abbr[date.month - 1]
        day_abbr = names.days_abbr[date.weekday()]
        fields.update(
            MMMM=names.months[date.month - 1],
            MMM=month_abbr if keep_dot else month_abbr.rstrip("."),
            MMMx=month_abbr.rstrip("."),  # between dashes or slashes: never a dot
            EEEE=names.days[date.weekday()],
            EEE=day_abbr if keep_dot else day_abbr.rstrip("."),
            ord=_ordinal(lang, date.day),
        )
    return fields


def _apply_case(text: str, case: str) -> str:
    if case == "lower":
        return text.lower()
    if case == "upper":
        return text.upper()
    if case == "first_upper":
        return text[:1].upper() + text[1:]
    return text


def render_date(date: dt.date, rng: random.Random) -> DateExample:
    """Write `date` in a randomly chosen language, pattern and case (all drawn from `rng`)."""
    if not FIRST_DAY <= date <= LAST_DAY:
        raise ValueError(f"{date} is outside {FIRST_DAY}..{LAST_DAY}")
    two_digit_ok = _YY_FIRST <= date.year <= _YY_LAST
    if rng.random() < NUMERIC_SHARE:
        lang, patterns, case = "num", NUMERIC_PATTERNS, "as_is"
    else:
        lang = rng.choice(LANGS)
        patterns = NAMED_PATTERNS[lang]
        case = rng.choices(_CASES, _CASE_WEIGHTS)[0]
    if not two_digit_ok:
        patterns = tuple(p for p in patterns if "{yy}" not in p)
    pattern = rng.choice(patterns)
    source = _apply_case(pattern.format(**_fields(date, lang, rng)), case)
    return DateExample(source, date.isoformat(), date, lang, pattern, case)


def _day(offset: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=offset)


def generate_date_examples(n: int, seed: int) -> list[DateExample]:
    """`n` examples with dates drawn uniformly (with repeats) from 1900..2099; seeded."""
    rng = random.Random(seed)
    return [render_date(_day(rng.randrange(N_DAYS)), rng) for _ in range(n)]


def dates_split_examples(
    n_train: int, n_valid: int, n_test: int, seed: int
) -> dict[str, list[DateExample]]:
    """Like `dates_splits` but keeps each example's date, language, pattern and case."""
    if min(n_train, n_valid, n_test) < 0:
        raise AtentoError("dates corpus sizes must not be negative")
    if n_valid + n_test >= N_DAYS:
        raise AtentoError(f"data.n_valid + data.n_test must be below {N_DAYS} (distinct dates)")
    offsets = list(range(N_DAYS))
    random.Random(seed).shuffle(offsets)
    pools = {
        "test": offsets[:n_test],
        "valid": offsets[n_test : n_test + n_valid],
        "train": offsets[n_test + n_valid :],
    }
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    out = {}
    for split, pool in pools.items():
        rng = random.Random(f"{seed}:{split}")  # str seeds are hashed stably (not per process)
        # Held-out splits use each date once; train cycles its pool (new formats each time).
        days = [pool[i % len(pool)] for i in range(sizes[split])] if pool else []
        out[split] = [render_date(_day(o), rng) for o in days]
    return {k: out[k] for k in ("train", "valid", "test")}


def dates_splits(
    n_train: int, n_valid: int, n_test: int, seed: int
) -> dict[str, list[tuple[str, str]]]:
    """Seeded train / valid / test (source, ISO) pairs, disjoint by calendar date.

    Test and valid dates are distinct within and across splits (each date once); train uses
    every remaining date, cycling through them with fresh formats when n_train is larger. The
    test set depends only on (n_test, seed), so changing n_train leaves it unchanged.
    """
    splits = dates_split_examples(n_train, n_valid, n_test, seed)
    return {k: [(ex.source, ex.target) for ex in v] for k, v in splits.items()}
