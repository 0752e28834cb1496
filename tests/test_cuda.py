"""The CUDA paths: run where a GPU is present, skipped elsewhere (gpu_check.sh measures)."""

import pytest
import torch

from atento.config_io import load_config
from atento.rundir import load_run
from atento.training.loop import Trainer
from conftest import CONFIGS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DATES = ["Tuesday, 9 April 1974", "09.04.74", "samedi 14 juillet 2018"]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_and_decoding_on_cuda(tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this CUDA device has no bf16")
    over = ["runtime.device=cuda", f"runtime.precision={precision}", "train.max_steps=6",
            "train.valid_every=3"]  # fmt: skip
    result = Trainer(load_config(CONFIGS / "toy_transformer.yaml", over), tmp_path / "r",
                     progress=False).fit()  # fmt: skip
    assert result.device.startswith("cuda") and result.precision == precision
    assert result.peak_device_memory_mb and result.peak_device_memory_mb > 0
    run = load_run(tmp_path / "r")
    assert next(run.model.parameters()).device.type == "cuda"
    hyps = run.translator().with_search(beam=3, nbest=2).translate(DATES)
    assert [len(h) for h in hyps] == [2, 2, 2]


def test_cuda_and_cpu_decode_alike(tmp_path):
    over = ["runtime.device=cuda", "runtime.precision=fp32", "train.max_steps=6",
            "train.valid_every=0"]  # fmt: skip
    Trainer(load_config(CONFIGS / "toy_transformer.yaml", over), tmp_path / "r",
            progress=False).fit()  # fmt: skip
    gpu = load_run(tmp_path / "r").translator().with_search(beam=3).translate(DATES)
    cpu = load_run(tmp_path / "r", device="cpu").translator().with_search(beam=3)
    cpu = cpu.translate(DATES)
    for a, b in zip(gpu, cpu, strict=True):
        assert a[0].score == pytest.approx(b[0].score, abs=1e-3)
