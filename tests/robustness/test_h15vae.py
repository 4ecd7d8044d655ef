"""Robustness catalogue: components (issue 15, deliverable 4).

A library distilled for one component (the denoiser, or ``vae.decoder``) used for another, an
unknown component, and a quality the component has not: one line each, exit code 2, nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from robustness.catalogue import Case, check, params
from robustness.conftest import FAST_SEARCH

from tocsr_nas.cli import main

#: a micro decoder space: the three up-samplers of the tiny VAE decoder (3 pairs)
DECODER_SPACE = """\
name: micro-decoder
rules:
  - name: upsamplers
    match: "up_blocks.*.upsamplers.*"
    type: Upsample2D
    candidates: [light_up]
"""


def decoder_library(tmp: Path, a) -> None:
    """``{tmp}/declib``: a 1-step library of the micro decoder space of the artefacts' teacher."""
    (tmp / "dec.yaml").write_text(DECODER_SPACE)
    argv = ["distill", "--teacher", str(a.teacher), "--component", "vae.decoder", "--space", str(tmp / "dec.yaml"),
            "--out", str(tmp / "declib"), "--steps", "1", "--samples", "4", "--val-samples", "2", "--batch-size", "2",
            "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0


SEARCH = ["search", "--teacher", "{teacher}", "--epsilon", "0.5", "--strategy", "random", "--budget", "2",
          "--out", "{tmp}/s", *FAST_SEARCH]  # fmt: skip

CASES = [
    Case("search", "denoiser-library-as-decoder", [*SEARCH, "--surrogates", "{library}", "--component", "vae.decoder"],
         r"distilled for component 'denoiser', not 'vae.decoder'", unchanged=["{library}"], absent=["{tmp}/s"]),
    Case("search", "decoder-library-as-denoiser", [*SEARCH, "--surrogates", "{tmp}/declib", "--component", "denoiser"],
         r"distilled for component 'vae.decoder', not 'denoiser'", setup=decoder_library, unchanged=["{tmp}/declib"],
         absent=["{tmp}/s"]),
    Case("search", "decoder-quality-denoising", [*SEARCH, "--surrogates", "{tmp}/declib", "--quality", "denoising"],
         r"unknown quality 'denoising' for component 'vae.decoder'; valid: reconstruction, agreement",
         setup=decoder_library, unchanged=["{tmp}/declib"], absent=["{tmp}/s"]),
    Case("distill", "resume-decoder-library-as-denoiser",
         ["distill", "--teacher", "{teacher}", "--space", "{tmp}/dec.yaml", "--out", "{tmp}/declib", "--resume",
          "--steps", "1", "--threads", "1", "--no-progress"],
         r"distilled for component 'vae.decoder', not 'denoiser'", setup=decoder_library, unchanged=["{tmp}/declib"]),
    Case("space", "unknown-component", ["space", "--teacher", "{teacher}", "--component", "vae.encoder", "--json"],
         r"unknown component 'vae.encoder'; valid: denoiser, vae.decoder"),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_catalogue(case, artefacts, tmp_path, capsys):
    check(case, artefacts, tmp_path, capsys)
