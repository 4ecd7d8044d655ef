"""The prepared GPU check of issue 16: what a GPU buys at paper scale, in at most 5 minutes on one GPU.

With random weights (only times are measured), on one device:

1. the ``sd21-vae16`` teacher UNet's forward time at 512 px, batch 1, in float32 and bfloat16;
2. feature capture (teacher forwards with every searchable block's inputs and outputs recorded)
   and distillation (Adam steps of a few real (block, candidate) pairs on those features, in
   mixed precision with float32 weights): samples per second and seconds per pair;
3. the paper table's compact UNets (``benchmarks/results/paper_table.configs.json``) assembled
   with fresh candidates and timed end to end against the teacher: the speed-up a GPU user
   gets, beside the GMACs ratio (fvcore, attention counted);
4. a one-step SR model around the teacher (``tocsr_nas.sr``; random weights) upscaling one
   128 px image x4 on the device (``super_resolve``: VAE encode, one denoiser call, decode), in
   float32 and under bfloat16 autocast (``--small``: a 32 px image).

Writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.md``::

    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check            # a GPU, sd21-vae16, 512 px
    python benchmarks/gpu_check.py --small --out /tmp/gpu-check --threads 1     # CPU, tiny preset, 64 px (<1 min)

``--small`` swaps the paper's configurations for the tiny preset's cheapest ones (every block at
its fewest GMACs, and the same without ``skip``), since the paper's apply to sd21-vae16 only.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "results" / "paper_table.configs.json"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--small", action="store_true", help="tiny preset at 64 px (a CPU run in under a minute)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per figure, median (default 10; 3 small)")
    p.add_argument("--pairs", type=int, default=3, help="(block, candidate) pairs distilled (default 3)")
    p.add_argument("--steps", type=int, default=None, help="Adam steps per pair (default 50; 10 small)")
    p.add_argument("--samples", type=int, default=None, help="captured samples (default 16; 8 small)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p.parse_args(argv)


def assemble(teacher, space, config, candidates):
    """A copy of the teacher's UNet with fresh (untrained) candidates installed for ``config``."""
    from tocsr_nas.searchspace import TEACHER

    unet = copy.deepcopy(teacher.unet)
    for path, name in config.items():
        if name != TEACHER:
            block = teacher.unet.get_submodule(path)
            made = candidates(block, space[path].choices[space[path].index(name)])
            unet.set_submodule(path, copy.deepcopy(made))
    return unet.eval()


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    import torch

    from tocsr_nas.devices import dtype_name, resolve
    from tocsr_nas.evaluators import count_complexity
    from tocsr_nas.stages.costs import model_latency_ms
    from tocsr_nas.stages.space import CandidateCache, build_space
    from tocsr_nas.surrogates.distill import PairJob, TrainSettings, train_job
    from tocsr_nas.surrogates.features import FeatureCache, capture_features
    from tocsr_nas.teacher import build_teacher

    logging.getLogger("diffusers").setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    start_all = time.perf_counter()
    placement = resolve(args.device, "float32")
    device = placement.device
    preset, resolution = ("tiny", 64) if args.small else ("sd21-vae16", 512)
    repeats = args.repeats or (3 if args.small else 10)
    steps = args.steps or (10 if args.small else 50)
    samples = args.samples or (8 if args.small else 16)
    teacher = build_teacher(preset, seed=0).eval()
    probe = teacher.unet_example_inputs(1, resolution=teacher.vae_scale_factor * 8)
    candidates = CandidateCache()
    space = build_space(teacher.unet, None, probe=probe, candidates=candidates)
    report: dict = {
        "command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "preset": preset,
        "resolution": resolution,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
    }

    # 1. the teacher's forward time in each dtype
    dtypes = ["float32", "bfloat16"] + (["float16"] if device.type != "cpu" else [])
    forward = {}
    for dt in dtypes:
        forward[dt] = model_latency_ms(teacher.unet, teacher, resolution, device=str(device), dtype=dt,
                                       warmup=2, repeats=repeats)  # fmt: skip
    report["teacher_forward_ms"] = forward

    # 2. capture and distillation throughput
    placed = teacher.to(device) if device.type != "cpu" else teacher
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(Path(tmp) / "features")
        gen = torch.Generator().manual_seed(0)
        h = teacher.latent_size(resolution)
        batch = 4 if not args.small else 4

        def calls():
            for start in range(0, samples, batch):
                b = min(batch, samples - start)
                z = torch.randn(b, teacher.unet.config.in_channels, h, h, generator=gen).to(device)
                t = torch.randint(0, 1000, (b,), generator=gen).to(device)
                yield (z, t), {"encoder_hidden_states": placed.encoder_hidden_states(b).to(device), "return_dict": False}

        t0 = time.perf_counter()
        with torch.no_grad():
            for split in ("train", "val"):
                capture_features(placed.unet, space.paths, calls(), cache, split)
        capture_s = time.perf_counter() - t0
        report["capture"] = {"samples": 2 * samples, "seconds": capture_s, "samples_per_s": 2 * samples / capture_s,
                             "blocks": len(space)}  # fmt: skip
        pairs = []
        for block in space.blocks:  # the first trainable candidate of the first blocks
            cand = next((c for c in block.choices if c.type not in ("teacher", "skip")), None)
            if cand is not None:
                pairs.append((block.path, cand))
            if len(pairs) >= args.pairs:
                break
        settings = TrainSettings(steps=steps, batch_size=min(8, samples), lr=1e-3, seed=0)
        runs = []
        for path, cand in pairs:
            job = PairJob(path, cand, placed.unet.get_submodule(path), str(cache.root), tmp, settings, str(device),
                          "bfloat16" if device.type != "mps" else "float16")  # fmt: skip
            t0 = time.perf_counter()
            record, _ = train_job(job)
            runs.append({"block": path, "candidate": cand.name, "steps": record.steps,
                         "seconds": time.perf_counter() - t0, "final_over_initial": record.final_loss / record.initial_loss})  # fmt: skip
        report["distill"] = {"dtype": "bfloat16 autocast, float32 weights", "pairs": runs,
                             "steps_per_s": sum(r["steps"] for r in runs) / max(sum(r["seconds"] for r in runs), 1e-9)}  # fmt: skip
    teacher.to("cpu")

    # 3. compact UNets against the teacher
    if args.small:
        from tocsr_nas.stages.costs import cost_table_for

        table = cost_table_for(teacher, space, resolution, cache=False, candidates=candidates)
        configs = {"min_gmacs": table.min_cost("gmacs")[0], "min_gmacs_no_skip": table.min_cost("gmacs", exclude=("skip",))[0]}
    else:
        configs = json.loads(CONFIGS.read_text())
    args_, kwargs_ = teacher.unet_example_inputs(1, resolution=resolution)
    teacher_gmacs = count_complexity(teacher.unet, args_, kwargs_).gmacs
    rows = {"teacher": {"gmacs": teacher_gmacs, "ms": {}}}
    models = {"teacher": teacher.unet}
    for name, cfg in configs.items():
        model = assemble(teacher, space, cfg, candidates)
        models[name] = model
        rows[name] = {"gmacs": count_complexity(model, args_, kwargs_).gmacs, "ms": {}}
    for dt in ("float32", "bfloat16"):
        for name, model in models.items():
            rows[name]["ms"][dt] = model_latency_ms(model, teacher, resolution, device=str(device), dtype=dt,
                                                    warmup=2, repeats=repeats)  # fmt: skip
    for name, row in rows.items():
        row["gmacs_ratio"] = teacher_gmacs / row["gmacs"]
        row["speedup"] = {dt: rows["teacher"]["ms"][dt] / ms for dt, ms in row["ms"].items()}
    report["compact"] = rows

    # 4. one-step SR: one image, x4, on the device (the teacher's modules are taken over: its last use)
    report["sr_onestep"] = sr_onestep_ms(teacher, device, 32 if args.small else 128, repeats)
    report["seconds"] = time.perf_counter() - start_all
    report["dtype_names"] = [dtype_name(getattr(torch, d)) for d in dtypes]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return report


def sr_onestep_ms(teacher, device, side: int, repeats: int) -> dict:
    """Median ms of a one-step x4 ``super_resolve`` of one ``side`` px image on ``device``, per dtype."""
    import torch

    from tocsr_nas.devices import resolve
    from tocsr_nas.evaluators.latency import measure_ms
    from tocsr_nas.sr.model import Backbone, SRModel
    from tocsr_nas.sr.upscale import super_resolve

    backbone = Backbone(teacher.unet, teacher.vae, teacher.scheduler, teacher.context, "diffusers-unet")
    model = SRModel.from_backbone(backbone, scale=4, tile=64)
    model.config = dict(model.config, kind="onestep", onestep={"timestep": 250, "start": "lr", "seed": 0})
    model.to(device)
    lr = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ms = {}
    for dt in ("float32", "bfloat16"):
        with resolve(str(device), dt).autocast():
            ms[dt] = measure_ms(lambda: super_resolve(model, lr), device=device, warmup=1, repeats=repeats)
    out = super_resolve(model, lr)
    return {"input_px": side, "output_px": list(out.shape[-2:]), "ms": ms}


def markdown(r: dict) -> str:
    """The Markdown summary of a report."""
    f = r["teacher_forward_ms"]
    lines = [
        f"Device {r['device']}, preset {r['preset']} at {r['resolution']} px, batch 1, median of {r['repeats']} "
        f"({r['seconds']:.0f} s in all).",
        "",
        "Teacher UNet forward: " + ", ".join(f"{dt} {ms:.2f} ms" for dt, ms in f.items()) + ".",
        f"Feature capture: {r['capture']['samples_per_s']:.1f} samples/s over {r['capture']['blocks']} blocks; "
        f"distillation ({r['distill']['dtype']}): {r['distill']['steps_per_s']:.1f} Adam steps/s over "
        f"{len(r['distill']['pairs'])} pairs.",
        "",
        "| model | GMACs | GMACs ratio | ms float32 | speed-up float32 | ms bfloat16 | speed-up bfloat16 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in r["compact"].items():
        lines.append(
            f"| {name} | {row['gmacs']:.3f} | {row['gmacs_ratio']:.2f}x | {row['ms']['float32']:.2f} | "
            f"{row['speedup']['float32']:.2f}x | {row['ms']['bfloat16']:.2f} | {row['speedup']['bfloat16']:.2f}x |"
        )
    if "sr_onestep" in r:
        sr = r["sr_onestep"]
        lines += ["", f"One-step SR x4 of one {sr['input_px']} px image (to {sr['output_px'][0]} px): "
                  + ", ".join(f"{dt} {ms:.1f} ms" for dt, ms in sr["ms"].items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
