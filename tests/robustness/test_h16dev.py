"""Robustness catalogue: ``--device`` and ``--dtype`` (issue 16). An absent GPU, an unknown device or
dtype, float16 on the CPU and a bad ``--max-latency`` are one line and exit code 2, before anything
is written (the output folder does not exist afterwards)."""

from __future__ import annotations

import pytest
import torch

from robustness.catalogue import Case, check, params

GPU_PRESENT = [pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")]
NO_GPU = "no CUDA GPU on this machine"

CASES: list[Case] = [
    Case("distill", "device-cuda-absent", ["distill", "--out", "{tmp}/lib", "--device", "cuda"], NO_GPU,
         absent=["{tmp}/lib"], marks=GPU_PRESENT),
    Case("distill", "device-cuda-index-absent", ["distill", "--out", "{tmp}/lib", "--device", "cuda:3"], NO_GPU,
         absent=["{tmp}/lib"], marks=GPU_PRESENT),
    Case("distill", "device-unknown", ["distill", "--out", "{tmp}/lib", "--device", "tpu"], "unknown --device 'tpu'",
         absent=["{tmp}/lib"]),
    Case("distill", "dtype-float16-cpu", ["distill", "--out", "{tmp}/lib", "--device", "cpu", "--dtype", "float16"],
         "float16 is not supported on the CPU", absent=["{tmp}/lib"]),
    Case("distill", "dtype-unknown", ["distill", "--out", "{tmp}/lib", "--dtype", "float64"], "invalid choice: 'float64'",
         absent=["{tmp}/lib"]),
    Case("space", "latency-device-cuda-absent", ["space", "--latency", "--device", "cuda"], NO_GPU, marks=GPU_PRESENT),
    Case("search", "max-latency-negative",
         ["search", "--teacher", "{tmp}", "--surrogates", "{tmp}", "--out", "{tmp}/s", "--epsilon", "0.05",
          "--max-latency", "-1"], "must be a positive number", absent=["{tmp}/s"]),
    Case("search", "objective-unknown",
         ["search", "--teacher", "{tmp}", "--surrogates", "{tmp}", "--out", "{tmp}/s", "--epsilon", "0.05",
          "--objective", "flops"], "invalid choice: 'flops'", absent=["{tmp}/s"]),
    Case("teacher train", "device-cuda-absent", ["teacher", "train", "--out", "{tmp}/t", "--device", "cuda"], NO_GPU,
         absent=["{tmp}/t"], marks=GPU_PRESENT),
    Case("sr train", "device-cuda-absent",
         ["sr", "train", "--backbone", "{tmp}/none", "--out", "{tmp}/sr", "--device", "cuda"], NO_GPU,
         absent=["{tmp}/sr"], marks=GPU_PRESENT),
    Case("upscale", "device-cuda-absent",
         ["upscale", "--model", "{tmp}/none", "{tmp}/in.png", "--out", "{tmp}/up", "--device", "cuda"], NO_GPU,
         absent=["{tmp}/up"], marks=GPU_PRESENT),
    Case("evaluate", "device-cuda-absent", ["evaluate", "--model", "{tmp}/none", "--out", "{tmp}/ev", "--device", "cuda"],
         NO_GPU, absent=["{tmp}/ev"], marks=GPU_PRESENT),
    Case("run", "device-cuda-absent", ["run", "--out", "{tmp}/run", "--device", "cuda"], NO_GPU, absent=["{tmp}/run"],
         marks=GPU_PRESENT),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_catalogue(case, artefacts, tmp_path, capsys):
    check(case, artefacts, tmp_path, capsys)
