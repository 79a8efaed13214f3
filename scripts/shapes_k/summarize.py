#!/usr/bin/env python3
"""Summary of the shapes composition study (issue 25): accuracy against k per sampler, pooled
over seeds with 95 % Wilson intervals, the corrected samplers' gains over reverse diffusion with
z over seeds, and an independent re-scoring of every kept samples.npy.

    python3 scripts/shapes_k/summarize.py experiments/sweeps/shapes-k     # needs numpy

Writes <sweep>/summary.md and <sweep>/accuracy_vs_k.svg. Reads each cell's result.json (our
detector's accuracy, NFE, seconds, acceptance, ESS) and samples.npy (uint8 or float32 pixels).

The independent scorer shares no code or threshold with ebdiff's detector (the dataset's
mean-absolute-deviation test): a cell is occupied when at least `MIN_PIXELS` of its pixels differ
from the background colour by more than `PIXEL_DELTA` in some channel. Every object the generator
draws covers more than 7 such pixels in an 8-pixel cell (the smallest, a triangle of radius 2.8,
covers ≈ 10 at full colour), and clean background has none.
"""
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

BACKGROUND = np.array([40, 40, 40])
PIXEL_DELTA = 60
MIN_PIXELS = 5


def wilson(successes, n, z=1.96):
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre - half, centre + half


def to_pixels(samples):
    if samples.dtype == np.uint8:
        return samples.astype(np.int32)
    # ebdiff's model_pixel_to_u8: round((clamp(x, -1, 1) + 1) · 127.5)
    return np.round((np.clip(samples, -1, 1) + 1) * 127.5).astype(np.int32)


def independent_occupancy(samples, size, grid):
    """[n, grid²] booleans: cells with ≥ MIN_PIXELS pixels far from the background."""
    x = to_pixels(samples).reshape(len(samples), 3, size, size)
    far = (np.abs(x - BACKGROUND[None, :, None, None]) > PIXEL_DELTA).any(axis=1)
    side = size // grid
    cells = far.reshape(len(samples), grid, side, grid, side).sum(axis=(2, 4))
    return cells.reshape(len(samples), grid * grid) >= MIN_PIXELS


def requested(composition):
    out = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("op") == "model" and node.get("label") is not None:
                out.append(node["label"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(composition)
    return sorted(set(out))


def main(sweep):
    sweep = Path(sweep)
    rows = []
    for result_path in sorted(sweep.glob("cells/*/result.json")):
        r = json.loads(result_path.read_text())
        if r["status"] != "ok":
            continue
        labels = r["labels"]
        sampler = labels["list"]
        k_label, seed_label = labels["cells"].split("-")
        cells = requested(r["config"]["sampling"]["composition"])
        samples = np.load(result_path.parent / "samples.npy")
        size = int(round(math.sqrt(samples.shape[1] / 3)))
        occ = independent_occupancy(samples, size, 3)
        ours = r["metrics"]["accuracy"]
        theirs = float(occ[:, cells].all(axis=1).mean())
        rows.append({
            "sampler": sampler,
            "k": int(k_label[1:]),
            "seed": int(seed_label[1:]),
            "cells": cells,
            "n": samples.shape[0],
            "accuracy": ours,
            "independent": theirs,
            "recall": r["metrics"].get("cell_recall"),
            "objects": r["metrics"].get("objects"),
            "extra": float((occ.sum(axis=1) - occ[:, cells].sum(axis=1)).mean()),
            "nfe": r["metrics"].get("nfe"),
            "seconds": r["metrics"].get("seconds"),
            "acceptance": r["metrics"].get("acceptance"),
            "ess_min": r["metrics"].get("group_ess_min", r["metrics"].get("ess_min")),
            "ancestors": r["metrics"].get("group_ancestors_final"),
        })
    if not rows:
        sys.exit(f"no finished cells under {sweep}/cells")
    by = defaultdict(list)
    for row in rows:
        by[(row["sampler"], row["k"])].append(row)
    samplers = [s for s in ["reverse", "reverse-nfe", "mala", "hmc", "smc", "smc-hmc"]
                if any(key[0] == s for key in by)]
    ks = sorted({k for _, k in by})
    lines = [f"# {sweep.name}: accuracy against the number of composed objects k", "",
             "Pooled over the seeds (each seed composes its own cell set); 95 % Wilson interval; "
             "per-seed accuracies in brackets. `independent` re-scores the same samples.npy with a "
             "detector that shares no code with ebdiff's (pixels far from the background per cell); "
             "`max |Δ|` is its largest per-cell difference from our accuracy.", "",
             "| sampler | k | accuracy (95 % CI) | per seed | independent | recall | extra objects | NFE | s / cell | acceptance | ESS min (group) | ancestors / group |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    worst = 0.0
    summary = {}
    for s in samplers:
        for k in ks:
            cell_rows = sorted(by.get((s, k), []), key=lambda r: r["seed"])
            if not cell_rows:
                continue
            n = sum(r["n"] for r in cell_rows)
            hits = sum(round(r["accuracy"] * r["n"]) for r in cell_rows)
            lo, hi = wilson(hits, n)
            acc = hits / n
            ind = sum(r["independent"] * r["n"] for r in cell_rows) / n
            worst = max(worst, max(abs(r["independent"] - r["accuracy"]) for r in cell_rows))
            summary[(s, k)] = (acc, lo, hi, [r["accuracy"] for r in cell_rows])

            def mean_of(key, fmt):
                vals = [r[key] for r in cell_rows if r[key] is not None]
                return fmt.format(sum(vals) / len(vals)) if vals else "–"

            lines.append(
                f"| {s} | {k} | {acc:.3f} ({lo:.3f}–{hi:.3f}) | "
                f"{' / '.join(f'{r['accuracy']:.3f}' for r in cell_rows)} | {ind:.3f} | "
                f"{mean_of('recall', '{:.3f}')} | {mean_of('extra', '{:.2f}')} | "
                f"{mean_of('nfe', '{:.0f}')} | {mean_of('seconds', '{:.0f}')} | "
                f"{mean_of('acceptance', '{:.2f}')} | {mean_of('ess_min', '{:.3f}')} | "
                f"{mean_of('ancestors', '{:.1f}')} |")
    lines += ["", f"Largest per-cell difference between the two detectors: {worst:.3f}.", ""]
    # Gains of each corrected sampler over the reverse baselines, paired by seed (same cell set).
    lines += ["## Gains over reverse diffusion (paired by seed)", "",
              "| sampler | k | vs | gain (points) | per seed | z over seeds |", "|---|---|---|---|---|---|"]
    for s in [x for x in samplers if x not in ("reverse", "reverse-nfe")]:
        for base in ["reverse", "reverse-nfe"]:
            for k in ks:
                a, b = by.get((s, k)), by.get((base, k))
                if not a or not b:
                    continue
                pa = {r["seed"]: r["accuracy"] for r in a}
                pb = {r["seed"]: r["accuracy"] for r in b}
                d = [pa[x] - pb[x] for x in sorted(pa) if x in pb]
                if len(d) < 2:
                    continue
                m = sum(d) / len(d)
                sd = math.sqrt(sum((v - m) ** 2 for v in d) / (len(d) - 1))
                z = m / (sd / math.sqrt(len(d))) if sd > 0 else float("inf") * (1 if m > 0 else -1)
                lines.append(f"| {s} | {k} | {base} | {100 * m:+.1f} | "
                             f"{' / '.join(f'{100 * v:+.1f}' for v in d)} | {z:+.2f} |")
    (sweep / "summary.md").write_text("\n".join(lines) + "\n")
    write_svg(sweep / "accuracy_vs_k.svg", summary, samplers, ks)
    print("\n".join(lines))


def write_svg(path, summary, samplers, ks):
    colours = {"reverse": "#444444", "reverse-nfe": "#999999", "mala": "#1f77b4", "hmc": "#1f77b4",
               "smc": "#d62728", "smc-hmc": "#2ca02c"}
    w, h, left, bottom, top, right = 560, 360, 60, 50, 20, 150
    px = lambda k: left + (k - min(ks)) / max(1, max(ks) - min(ks)) * (w - left - right)
    py = lambda a: top + (1 - a) * (h - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>']
    for a in [0, 0.25, 0.5, 0.75, 1.0]:
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{py(a)}" y2="{py(a)}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{py(a) + 4}" text-anchor="end">{a:.2f}</text>')
    for k in ks:
        out.append(f'<text x="{px(k)}" y="{h - bottom + 18}" text-anchor="middle">{k}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 10}" text-anchor="middle">k (composed objects)</text>')
    out.append(f'<text x="14" y="{(top + h - bottom) / 2}" transform="rotate(-90 14 {(top + h - bottom) / 2})" text-anchor="middle">accuracy (all k present), 95 % CI</text>')
    for i, s in enumerate(samplers):
        c = colours.get(s, "#000")
        pts = [(k, summary[(s, k)]) for k in ks if (s, k) in summary]
        off = (i - len(samplers) / 2) * 3
        if len(pts) > 1:
            d = " ".join(f"{px(k) + off},{py(v[0])}" for k, v in pts)
            out.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="1.5"/>')
        for k, (acc, lo, hi, _) in pts:
            x = px(k) + off
            out.append(f'<line x1="{x}" x2="{x}" y1="{py(lo)}" y2="{py(hi)}" stroke="{c}"/>')
            out.append(f'<circle cx="{x}" cy="{py(acc)}" r="3" fill="{c}"/>')
        out.append(f'<line x1="{w - right + 15}" x2="{w - right + 35}" y1="{top + 15 + 18 * i}" y2="{top + 15 + 18 * i}" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{w - right + 40}" y="{top + 19 + 18 * i}">{s}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "experiments/sweeps/shapes-k")
