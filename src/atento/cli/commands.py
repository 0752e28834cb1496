"""The subcommand modules, in the order `atento --help` lists them; each has `register(sub)`
(`atento.cli.main` imports them by name). A new subcommand is a new module plus one line here."""

COMMAND_MODULES = (
    "atento.cli.demo",
    "atento.cli.train",
    "atento.cli.prepare",
    "atento.cli.translate",
    "atento.cli.evaluate",
    "atento.cli.attention",
    "atento.cli.score",
    "atento.cli.compare_length",
    "atento.cli.beam_sweep",
    "atento.cli.search_errors",
    "atento.cli.search_tree",
    "atento.cli.serve",
    "atento.cli.sample",
    "atento.cli.caption",
    "atento.cli.classify",
    "atento.cli.import_hf",
)
