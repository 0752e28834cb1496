"""The built-in architectures and tasks, put together in one place.

`atento.registry` reads these tables the first time a name is looked up; neither this module
nor the ones that define the models and tasks import the registry. A new built-in architecture
or task is its module plus one entry here. A program's own (a test, a plugin) registers with
`registry.register_architecture` / `registry.register_task` instead, and wins over a built-in
of the same name.
"""

from __future__ import annotations

from collections.abc import Callable

from atento.models.captioning import ShowAttendTellConfig, build_show_attend_tell
from atento.models.factory import RNNConfig, TransformerConfig, build_rnn, build_transformer
from atento.models.rnn_classifier import BiRNNConfig, build_birnn
from atento.models.text import BertConfig, GPTConfig, build_bert, build_gpt
from atento.tasks.base import Task
from atento.tasks.captioning import CaptionTask
from atento.tasks.classify import ClassifyTask
from atento.tasks.lm import LanguageModelTask
from atento.tasks.mlm import MaskedLMTask
from atento.tasks.translation import TranslationTask

# model.arch: (its config section, its builder, whether bf16 autocast pays on a CPU), as
# `registry.Architecture` holds them
ARCHITECTURES: dict[str, tuple[type, Callable, bool]] = {
    # bf16 autocast made RNN training ~7 % slower on a 2-core AMX CPU (benchmarks/README.md):
    # the GRU's small recurrent products gain nothing, and the casts cost; `auto` keeps fp32.
    "rnn": (RNNConfig, build_rnn, False),
    "transformer": (TransformerConfig, build_transformer, True),
    "gpt": (GPTConfig, build_gpt, True),
    # the LSTM's small recurrent products gain nothing from bf16 on a CPU either
    "show_attend_tell": (ShowAttendTellConfig, build_show_attend_tell, False),
    "bert": (BertConfig, build_bert, True),
    # a sentence classifier on bidirectional GRU/LSTM annotations (task: classify)
    "birnn": (BiRNNConfig, build_birnn, False),
}

TASKS: dict[str, type[Task]] = {
    "translation": TranslationTask,
    "lm": LanguageModelTask,
    "caption": CaptionTask,
    "mlm": MaskedLMTask,
    "classify": ClassifyTask,
}
