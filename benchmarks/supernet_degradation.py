"""Supernet switch time vs forward time, and graceful degradation, on the committed tiny teacher.

Usage (the library must be distilled from the committed tiny teacher, e.g. by `tocsr-nas run`)::

    python benchmarks/supernet_degradation.py runs/demo/surrogates [THREADS] [CONFIGS_PER_ROW]

Prints the supernet's construction time, the mean `set_configuration` time, the median forward
time at batch 1 and 16, and a table of teacher agreement (relative MSE of the epsilon prediction
against the teacher's on a fixed batch of 16 held-out noisy latents) by number of swapped blocks.
"""
import random, statistics, sys, time
import torch
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
PER_ROW = int(sys.argv[3]) if len(sys.argv) > 3 else 12
from tocsr_nas.teacher import Teacher, default_teacher_dir
from tocsr_nas.surrogates.library import SurrogateLibrary
from tocsr_nas.surrogates.supernet import SuperNet
from tocsr_nas.teacher.data import PhotoDataset
from tocsr_nas.stages.distill import noisy_unet_batches

teacher = Teacher.load(default_teacher_dir())
lib = SurrogateLibrary.open(sys.argv[1], teacher_fingerprint=teacher.fingerprint())
space = lib.space
t0 = time.perf_counter(); net = SuperNet(teacher.unet, lib, space); build = time.perf_counter() - t0
print(f"supernet construction (loads {len(lib)} surrogates once): {build*1000:.0f} ms")
# fixed validation batch: held-out photos, noisy latents across the schedule
images = PhotoDataset.from_skimage("val").random_batch(16, 64, seed=123)
(args, kwargs), = list(noisy_unet_batches(teacher, images, seed=5, batch=16))
rng = random.Random(0)
configs = [space.sample(rng) for _ in range(200)]
t0 = time.perf_counter()
for cfg in configs:
    net.set_configuration(cfg)
switch = (time.perf_counter() - t0) / len(configs)
net.set_configuration({})
with torch.no_grad():
    ref = net(*args, **kwargs)[0]
    for b in (1, 16):
        a1 = tuple(x[:b] for x in args); k1 = {**kwargs, "encoder_hidden_states": kwargs["encoder_hidden_states"][:b]}
        net(*a1, **k1)
        times = []
        for _ in range(10):
            t0 = time.perf_counter(); net(*a1, **k1); times.append(time.perf_counter() - t0)
        print(f"forward pass batch {b}: {statistics.median(times)*1000:.2f} ms (median of 10)")
print(f"set_configuration: {switch*1e6:.1f} us per switch (mean over {len(configs)} random configurations)")
# graceful degradation: relative error of the UNet output vs the teacher by number of swapped blocks
paths = space.paths
print("\nswapped blocks | configs | teacher agreement: rel. MSE of eps prediction (mean, min..max)")
for k in (0, 1, 2, 4, 8, 12, 16, len(paths)):
    errs = []
    for i in range(PER_ROW if k else 1):
        r = random.Random(1000 * k + i)
        chosen = r.sample(paths, k)
        cfg = {p: r.choice(space[p].names[1:]) for p in chosen}
        net.set_configuration(cfg)
        with torch.no_grad():
            out = net(*args, **kwargs)[0]
        errs.append(float(((out - ref) ** 2).mean() / (ref ** 2).mean()))
    print(f"{k:14d} | {len(errs):7d} | {statistics.mean(errs):.4f} ({min(errs):.4f}..{max(errs):.4f})")
net.set_configuration({})
with torch.no_grad():
    assert torch.equal(net(*args, **kwargs)[0], ref)
