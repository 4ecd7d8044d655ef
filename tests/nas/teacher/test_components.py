"""Components (issue 15, deliverable 4): the VAE decoder through space, distill, search, export and load_compact.

One module-scoped run on the shipped tiny teacher: ``space --component vae.decoder --json``, a
1-step ``distill`` of the default decoder space, a 4-trial ``search``, ``export`` of a trial that
replaces blocks, then ``load_compact`` and one forward with the teacher decoder's own input.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import tocsr_nas
from tocsr_nas.cli import main
from tocsr_nas.evaluators.reconstruction import ReconstructionSet, score
from tocsr_nas.surrogates.library import SurrogateLibrary
from tocsr_nas.teacher import Teacher, default_teacher_dir
from tocsr_nas.teacher.components import available_components, get_component, replace_decoder

FAST = ["--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def teacher():
    return Teacher.load(default_teacher_dir()).eval()


@pytest.fixture(scope="module")
def decoder_run(tmp_path_factory):
    """A decoder library, a search over it and an export of its last trial (every choice feasible or not)."""
    root = tmp_path_factory.mktemp("decoder")
    lib, search, compact = root / "lib", root / "search", root / "compact"
    assert main(["distill", "--component", "vae.decoder", "--out", str(lib), "--steps", "1", "--samples", "4",
                 "--val-samples", "2", "--batch-size", "2", *FAST]) == 0  # fmt: skip
    assert main(["search", "--teacher", str(default_teacher_dir()), "--surrogates", str(lib), "--out", str(search),
                 "--epsilon", "0.05", "--budget", "4", "--val-samples", "2", "--strategy", "random", *FAST]) == 0  # fmt: skip
    return {"lib": lib, "search": search, "compact": compact}


def test_registered():
    assert {"denoiser", "vae.decoder"} <= set(available_components())
    assert get_component(None).name == "denoiser"


def test_space_json_counts_the_decoder(teacher, capsys):
    assert main(["space", "--component", "vae.decoder", "--json", "--no-cache"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["component"] == "vae.decoder"
    assert report["teacher_params"] == sum(p.numel() for p in teacher.vae.decoder.parameters())
    paths = [b["path"] for b in report["blocks"]]
    assert "mid_block.resnets.0" in paths and "up_blocks.0.upsamplers.0" in paths
    assert 0 < report["min_gmacs"] < report["teacher_gmacs"]


def test_library_records_the_component(decoder_run):
    lib = SurrogateLibrary.open(decoder_run["lib"])
    assert lib.component == "vae.decoder"
    assert lib.is_complete


def test_search_records_the_component(decoder_run):
    settings = json.loads((decoder_run["search"] / "search.json").read_text())
    assert settings["component"] == "vae.decoder" and settings["quality"] == "reconstruction"


def test_export_and_load_compact(decoder_run, teacher, capsys):
    # the last trial of a random search: some blocks replaced
    assert main(["export", "--search", str(decoder_run["search"]), "--trial", "3", "--out", str(decoder_run["compact"])]) == 0
    meta = json.loads((decoder_run["compact"] / "compact.json").read_text())
    assert meta["component"] == "vae.decoder" and meta["blocks"]
    decoder = tocsr_nas.load_compact(decoder_run["compact"])
    z = torch.randn(2, teacher.vae.config.latent_channels, 8, 8)  # the teacher decoder's own input
    with torch.no_grad():
        want, got = teacher.vae.decoder(z), decoder(z)
    assert type(got) is type(want) and got.shape == want.shape
    assert sum(p.numel() for p in decoder.parameters()) == meta["measured"]["params"]
    assert meta["measured"]["params"] < sum(p.numel() for p in teacher.vae.decoder.parameters())


def test_replace_decoder_decodes_with_the_compact_one(decoder_run, teacher):
    if not (decoder_run["compact"] / "compact.json").is_file():
        pytest.skip("needs test_export_and_load_compact")
    vae = Teacher.load(default_teacher_dir()).vae.eval()
    replace_decoder(vae, decoder_run["compact"])
    compact = tocsr_nas.load_compact(decoder_run["compact"])
    z = torch.randn(1, vae.config.latent_channels, 4, 4)
    with torch.no_grad():
        assert torch.allclose(vae.decode(z).sample, compact(vae.post_quant_conv(z)), atol=1e-6)


def test_teacher_scores_zero_and_a_worse_decoder_more(teacher):
    z = torch.randn(4, teacher.vae.config.latent_channels, 4, 4)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    vs = ReconstructionSet.build(latents=z, images=x, decoder=teacher.vae.decoder, chunk_size=3)
    with torch.no_grad():
        assert score(vs, teacher.vae.decoder, "reconstruction") == 0.0
        assert score(vs, teacher.vae.decoder, "agreement") == 0.0
        q = score(vs, lambda z: 0.5 * teacher.vae.decoder(z), "agreement")
    assert q > 0 and math.isfinite(q)


def test_replace_decoder_refuses_what_is_no_compact_decoder(tmp_path):
    from tocsr_nas.errors import UserInputError

    vae = Teacher.load(default_teacher_dir()).vae
    with pytest.raises(UserInputError, match="is not a compact VAE decoder"):
        replace_decoder(vae, tmp_path)
