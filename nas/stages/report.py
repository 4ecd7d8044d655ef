"""``report.md`` and the terminal summary of a ``tocsr-nas run`` folder.

Reads only the stage outputs (``pipeline.json``, ``search/best.json``, ``compact/compact.json``,
``evaluate/evaluation.json``) so it can be regenerated at any time; missing stages are marked as such.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tocsr_nas._io import atomic_write_text

__all__ = ["write_report", "collect"]

STAGE_ORDER = ("teacher", "surrogates", "search", "compact", "sr", "onestep", "evaluate")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def collect(out: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Everything the report shows, as plain data."""
    return {
        "stages": {name: state.get("stages", {}).get(name, {}).get("seconds") for name in STAGE_ORDER},
        "best": _read(out / "search" / "best.json"),
        "compact": _read(out / "compact" / "compact.json"),
        "metrics": _read(out / "evaluate" / "evaluation.json"),
    }


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "-"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _sections(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(markdown lines, terminal lines)."""
    from tocsr_nas.search.results import no_gain_line

    md: list[str] = []
    term: list[str] = []
    total = sum(v for v in data["stages"].values() if v)
    md += ["## Stages", ""]
    rows = [[name, _fmt(sec, ".1f") if sec is not None else "not run"] for name, sec in data["stages"].items()]
    md += _table(["stage", "seconds"], rows + [["**total**", _fmt(total, ".1f")]]) + [""]
    term.append("stage times (s): " + ", ".join(f"{n} {_fmt(s, '.0f')}" for n, s in data["stages"].items()) + f"; total {total:.0f}")

    best = data["best"]
    if best:
        teacher = best.get("teacher") or {}
        md += ["## Search", "", f"objective `{best['objective']}`, strategy `{best['strategy']}`, "
               f"{best['n_trials']} trials ({best['n_feasible']} feasible at the primary epsilon {best['epsilon']}).", ""]
        rows = [["teacher", "-", _fmt((teacher.get("params") or 0) / 1e6), _fmt(teacher.get("gmacs"), ".4f"),
                 _fmt(teacher.get("quality"), ".4f"), "1.00x / 1.00x"]]
        for key, entry in (best.get("per_epsilon") or {}).items():
            if entry is None:
                rows.append([f"best @ eps={key}", "-", "none feasible", "", "", ""])
                continue
            if entry.get("beats_teacher") is False:
                rows.append([f"best @ eps={key}", str(entry["trial"]), no_gain_line(float(entry["epsilon"])), "", "", ""])
                continue
            red = entry.get("reduction") or {}
            rows.append([f"best @ eps={key}", str(entry["trial"]), _fmt(entry["params"] / 1e6), _fmt(entry["gmacs"], ".4f"),
                         _fmt(entry["quality"], ".4f"), f"{_fmt(red.get('params'), '.2f')}x / {_fmt(red.get('gmacs'), '.2f')}x"])
        md += _table(["configuration", "trial", "Mparams", "GMACs", "quality", "reduction (params / GMACs)"], rows)
        if "latency_predicted_ms" in best:  # a search with a latency table (--objective latency / --max-latency)
            line = (f"latency of the best at epsilon {best['epsilon']}: {_fmt(best.get('latency_predicted_ms'), '.3f')} ms "
                    f"predicted by the per-block table, {_fmt(best.get('latency_measured_ms'), '.3f')} ms measured end to "
                    f"end (teacher {_fmt(teacher.get('latency'), '.3f')} ms); see docs/devices.md")
            md += ["", line[0].upper() + line[1:] + "."]
            term.append(line)
        md += ["", "![Pareto front](search/plots/pareto.png)", "", "![Convergence](search/plots/convergence.png)", ""]
        for r in rows[1:]:
            if not r[3]:  # none feasible, or nothing cheaper than the teacher
                term.append(f"search {r[0]}: {r[2]}")
                continue
            term.append(f"search {r[0]}: {r[2]} M params, {r[3]} GMACs, quality {r[4]}, reduction {r[5]}")

    compact = data["compact"]
    if compact:
        m = compact["measured"]
        changed = {p: c for p, c in compact["configuration"].items() if c != "teacher"}
        md += ["## Compact UNet", "", f"trial {compact.get('trial')} at epsilon {compact.get('epsilon')}: "
               f"{m['params'] / 1e6:.3f} M params, {m['gmacs']:.4f} GMACs at {compact['resolution']} px "
               f"(fvcore on the rebuilt model); {len(changed)} of {len(compact['configuration'])} blocks replaced.", ""]
        md += _table(["block", "candidate"], [[p, c] for p, c in sorted(changed.items())]) + [""]
        term.append(f"compact UNet: {m['params'] / 1e6:.3f} M params, {m['gmacs']:.4f} GMACs, {len(changed)} blocks replaced")

    metrics = data["metrics"]
    if metrics:
        md += ["## Super-resolution (photos never trained on)", ""]
        n = len(metrics.get("images") or [])
        md += [f"x{metrics.get('scale', 4)} on {n} photos; dE00 = mean CIEDE2000 colour error (lower is better), "
               "dY = PSNR-Y gain over bicubic.", ""]
        rows = []
        for name, entry in (metrics.get("methods") or {}).items():
            worst = entry.get("worst") or {}
            worst_txt = "-" if not worst else (
                f"{Path(str(worst['name'])).name} ({_fmt(worst.get('gain_y', worst.get('psnr_y')), '+.2f' if 'gain_y' in worst else '.2f')})"
            )
            rows.append([name, _fmt(entry.get("psnr_y"), ".2f"), _fmt(entry.get("ssim_y"), ".4f"), _fmt(entry.get("psnr_rgb"), ".2f"),
                         _fmt(entry.get("ciede2000"), ".2f"), _fmt(entry.get("gain_y"), "+.2f"), worst_txt,
                         _fmt(entry.get("seconds_per_image"), ".3f")])
            term.append(f"SR {name}: PSNR-Y {_fmt(entry.get('psnr_y'), '.2f')} dB, SSIM-Y {_fmt(entry.get('ssim_y'), '.4f')}, "
                        f"PSNR-RGB {_fmt(entry.get('psnr_rgb'), '.2f')} dB, CIEDE2000 {_fmt(entry.get('ciede2000'), '.2f')}, "
                        f"worst {worst_txt}, {_fmt(entry.get('seconds_per_image'), '.3f')} s/image")
        bound = metrics.get("vae_bound") or {}
        rows.append(["(VAE round trip of HR)", _fmt(bound.get("psnr_y"), ".2f"), _fmt(bound.get("ssim_y"), ".4f"),
                     _fmt(bound.get("psnr_rgb"), ".2f"), _fmt(bound.get("ciede2000"), ".2f"), _fmt(bound.get("gain_y"), "+.2f"), "-", "-"])
        md += _table(["method", "PSNR-Y (dB)", "SSIM-Y", "PSNR-RGB (dB)", "dE00", "dY", "worst photo (dY)", "s / image"], rows) + [""]
        methods = metrics.get("methods") or {}
        if methods and all(len(m.get("per_image") or []) == n for m in methods.values()):
            md += ["Per photo (PSNR-Y dB / dE00):", ""]
            prow = []
            for i, image in enumerate(metrics["images"]):
                prow.append([Path(str(image["name"])).name] + [
                    f"{_fmt(m['per_image'][i].get('psnr_y'), '.2f')} / {_fmt(m['per_image'][i].get('ciede2000'), '.2f')}"
                    for m in methods.values()
                ])
            md += _table(["photo", *methods], prow) + [""]
        c = metrics.get("complexity") or {}
        if c:
            unet, enc, dec = (c.get(k) or {} for k in ("unet", "vae_encoder", "vae_decoder"))
            total = sum(x.get("gmacs") or 0 for x in (unet, enc, dec))
            if total:
                refiner = c.get("refiner") or {}
                total += refiner.get("gmacs") or 0
                share = ((enc.get("gmacs") or 0) + (dec.get("gmacs") or 0)) / total
                line = (f"one-step cost per {'x'.join(map(str, c.get('reference_px', [])))} px image: UNet {unet.get('gmacs', 0):.3f} "
                        f"GMACs, VAE encoder {enc.get('gmacs', 0):.3f} + decoder {dec.get('gmacs', 0):.3f} GMACs"
                        + (f", luma refiner {refiner['gmacs']:.3f} GMACs" if refiner.get("gmacs") else "")
                        + f" (VAE share {100 * share:.0f}%)")
                md += [line, ""]
                term.append(line)
        md += ["![comparison](evaluate/comparison.png)", "", "2x2 crops per photo (bicubic, multi-step, one-step, HR): `evaluate/crops/`.", ""]
    return md, term


def write_report(out: str | Path, state: dict[str, Any]) -> str:
    """Write ``OUT/report.md`` and return the terminal summary."""
    out = Path(out)
    data = collect(out, state)
    md, term = _sections(data)
    atomic_write_text(out / "report.md", "\n".join(["# tocsr-nas run", "", *md]))
    return "\n".join(term)
