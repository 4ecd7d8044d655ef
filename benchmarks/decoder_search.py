"""The VAE decoder as a searched component: space, distill, search, export, and what it saves in one-step SR.

On a teacher (default: the shipped tiny teacher) this runs, through the CLI in this process and
timed, ``space --component vae.decoder --json``, ``distill --component vae.decoder``, ``search``
(ECBO, ``--epsilon``) and ``export`` of the best feasible trial, then ``load_compact`` and one
forward with the teacher decoder's input. With ``--onestep DIR`` (a one-step SR folder whose VAE is
the teacher's, e.g. the demo's), it evaluates that model on the held-out photos (x4, the protocol
of ``tocsr-nas evaluate``: PSNR-Y with a border of 4 px) with the teacher decoder and with the
compact one, and reports the one-step GMACs per 128 px image of each (``model_complexity``).

Writes ``OUT/decoder_search.json`` and prints a table.

Usage: ``.venv/bin/python benchmarks/decoder_search.py --out /tmp/decoder_search --onestep runs/demo/onestep``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

import tocsr_nas
from tocsr_nas.cli import main as cli
from tocsr_nas.teacher import Teacher, default_teacher_dir


#: CPU seconds of this process per timed command (on a shared machine wall time says little)
CPU: dict[str, float] = {}


def timed(argv: list[str]) -> tuple[float, str]:
    """Run one CLI command in this process; ``(wall seconds, stdout)``; its CPU seconds go to :data:`CPU`."""
    buf = io.StringIO()
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(buf):
        code = cli(argv)
    CPU[argv[0]] = time.process_time() - cpu
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}")
    return time.perf_counter() - start, buf.getvalue()


def sr_figures(onestep: Path, decoder: Path | None, scale: int = 4) -> dict:
    """PSNR/SSIM-Y of a one-step SR model on the held-out photos and its one-step GMACs per 128 px image."""
    from tocsr_nas.sr.evaluate import eval_images, model_complexity
    from tocsr_nas.sr.metrics import sr_metrics
    from tocsr_nas.sr.model import SRModel
    from tocsr_nas.sr.upscale import super_resolve
    from tocsr_nas.teacher.components import replace_decoder
    from tocsr_nas.teacher.data import downscale, to_uint8

    model = SRModel.load(onestep)
    if decoder is not None:
        replace_decoder(model.vae, decoder)
    rows = []
    for name, hr in eval_images(None, scale):
        with torch.no_grad():
            sr = super_resolve(model, downscale(hr[None], scale))
        rows.append({"name": name, **sr_metrics(to_uint8(hr), to_uint8(sr[0]), scale)})
    c = model_complexity(model, 1)
    return {
        "psnr_y": float(np.mean([r["psnr_y"] for r in rows])),
        "ssim_y": float(np.mean([r["ssim_y"] for r in rows])),
        "per_image": rows,
        "onestep_gmacs_per_image": c["onestep_gmacs_per_image"],
        "decoder_gmacs": c["vae_decoder"]["gmacs"],
        "reference_px": c["reference_px"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/decoder_search"), help="work folder (replaced)")
    p.add_argument("--teacher", type=Path, default=None, help="teacher folder (default: the shipped tiny teacher)")
    p.add_argument("--steps", type=int, default=150, help="distillation steps per pair")
    p.add_argument("--samples", type=int, default=64, help="training feature samples")
    p.add_argument("--epsilon", default="0.05", help="search epsilon(s), comma-separated; the first is exported")
    p.add_argument("--budget", type=int, default=40, help="search evaluations")
    p.add_argument("--val-samples", type=int, default=16, help="held-out patches of the reconstruction quality")
    p.add_argument("--library", type=Path, default=None, help="use this decoder library (of --teacher) instead of distilling one")
    p.add_argument("--onestep", type=Path, default=None, help="a one-step SR folder with the teacher's VAE (copied)")
    args = p.parse_args()
    torch.set_num_threads(1)
    teacher_dir = args.teacher or default_teacher_dir()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    lib, search, compact = args.library or args.out / "lib", args.out / "search", args.out / "compact"
    fig: dict = {"teacher": str(teacher_dir), "settings": {k: str(v) for k, v in vars(args).items()}}

    secs, text = timed(["space", "--teacher", str(teacher_dir), "--component", "vae.decoder", "--json", "--no-cache"])
    report = json.loads(text)
    fig["space"] = {"seconds": secs, **{k: report[k] for k in ("num_blocks", "size", "teacher_params", "teacher_gmacs",
                                                                "min_gmacs", "min_params", "resolution")}}  # fmt: skip
    secs, _ = (None, None) if args.library else timed(["distill", "--teacher", str(teacher_dir), "--component", "vae.decoder", "--out", str(lib),
                     "--steps", str(args.steps), "--samples", str(args.samples), "--threads", "1", "--no-progress"])  # fmt: skip
    fig["distill"] = {"seconds": secs, "library": str(lib)}
    secs, text = timed(["search", "--teacher", str(teacher_dir), "--surrogates", str(lib), "--out", str(search),
                        "--epsilon", args.epsilon, "--budget", str(args.budget), "--val-samples", str(args.val_samples),
                        "--threads", "1", "--no-progress"])  # fmt: skip
    fig["search"] = {"seconds": secs, "summary": text.strip().splitlines()}
    best = json.loads((search / "best.json").read_text())
    fig["search"]["best"] = {k: best.get(k) for k in ("gmacs", "params", "quality", "epsilon", "teacher")}
    try:
        secs, text = timed(["export", "--search", str(search), "--out", str(compact)])
    except SystemExit:
        fig["export"] = None
        compact = None
    else:
        meta = json.loads((compact / "compact.json").read_text())
        decoder = tocsr_nas.load_compact(compact)
        teacher = Teacher.load(teacher_dir)
        z = torch.randn(1, teacher.vae.config.latent_channels, 8, 8)
        with torch.no_grad():
            want, got = teacher.vae.decoder(z), decoder(z)
        fig["export"] = {
            "seconds": secs,
            "measured": meta["measured"],
            "configuration": meta["configuration"],
            "gmacs_reduction": report["teacher_gmacs"] / meta["measured"]["gmacs"],
            "params_reduction": report["teacher_params"] / meta["measured"]["params"],
            "forward_matches_contract": bool(type(got) is type(want) and got.shape == want.shape),
        }
    if args.onestep is not None:
        local = args.out / "onestep"
        shutil.copytree(args.onestep, local)
        fig["sr"] = {"teacher_decoder": sr_figures(local, None)}
        if compact is not None:
            fig["sr"]["compact_decoder"] = sr_figures(local, compact)
            fig["sr"]["psnr_change_db"] = fig["sr"]["compact_decoder"]["psnr_y"] - fig["sr"]["teacher_decoder"]["psnr_y"]
    for stage, cpu in CPU.items():
        if isinstance(fig.get(stage), dict):
            fig[stage]["cpu_seconds"] = cpu
    (args.out / "decoder_search.json").write_text(json.dumps(fig, indent=1))

    s = fig["space"]
    print(f"space: {s['num_blocks']} blocks, {s['size']:.3g} configurations, teacher decoder {s['teacher_params']} params, "
          f"{s['teacher_gmacs']:.4f} GMACs at {s['resolution']} px ({s['seconds']:.1f} s)")
    d = fig["distill"]
    print(f"distill: {d['seconds'] if d['seconds'] is None else round(d['seconds'], 1)} s wall ({d.get('cpu_seconds', 0):.1f} s CPU); "
          f"search: {fig['search']['seconds']:.1f} s wall ({fig['search']['cpu_seconds']:.1f} s CPU)")
    for line in fig["search"]["summary"]:
        print("  " + line)
    if fig["export"]:
        e = fig["export"]
        print(f"export: {e['seconds']:.1f} s, {e['measured']['params']} params ({e['params_reduction']:.2f}x fewer), "
              f"{e['measured']['gmacs']:.4f} GMACs ({e['gmacs_reduction']:.2f}x fewer); forward contract {e['forward_matches_contract']}")
    if "sr" in fig:
        for k, v in fig["sr"].items():
            if isinstance(v, dict):
                print(f"one-step SR, {k}: {v['psnr_y']:.2f} dB / {v['ssim_y']:.4f}, {v['onestep_gmacs_per_image']:.4f} GMACs "
                      f"per {v['reference_px'][0]} px image (decoder {v['decoder_gmacs']:.4f})")
        if "psnr_change_db" in fig["sr"]:
            print(f"PSNR change with the compact decoder: {fig['sr']['psnr_change_db']:+.2f} dB")
    print(f"wrote {args.out / 'decoder_search.json'}")


if __name__ == "__main__":
    main()
