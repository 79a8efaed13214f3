#!/usr/bin/env python3
"""Writes the sweep files of the shapes composition study (issue 25) from one place, so that the
weight pilot, the model gate and the study use the same model, sampler settings and cell sets.

    python3 scripts/shapes_k/make_sweeps.py            # rewrites experiments/sweeps/shapes-k*.toml

Cell sets: for k objects and seed s, `random.Random(f"shapes-k {k} {s}").sample(range(9), k)`,
sorted; each seed composes a different set of cells.
"""
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = "experiments/shapes-k/model"
CELLS = 9
SEEDS = [0, 1, 2]
KS = [1, 2, 3, 4, 5]

# Chosen by the pilots (experiments/sweeps/shapes-k-weight, the README's study section).
WEIGHT = 2.0
COUNT = 128
# The corrected samplers, as tuned on the pilot (see README); NFE of MCMC per chain:
# 100 reverse steps + per window level (1 start evaluation + K kernel evaluations · leapfrog).
MCMC = {
    "kind": "mala",
    "steps_per_level": 2,
    "band": [0.55, 0.65],
}
MCMC_NFE = 100 + 50 * (1 + MCMC["steps_per_level"])
SMC_P = 8
SMC_REJUVENATE = {"kind": "hmc", "steps": 1}
HMC_BAND = [0.65, 0.75]


def cell_set(k, seed):
    return sorted(random.Random(f"shapes-k {k} {seed}").sample(range(CELLS), k))


def composition(cells, weight):
    conds = ", ".join(f'{{ op = "model", model = "shapes", label = {c} }}' for c in cells)
    return (f'{{ op = "guided", weight = {weight}, uncond = {{ op = "model", model = "shapes" }}, '
            f"conds = [{conds}] }}")


HEADER = """# {title}
# Written by scripts/shapes_k/make_sweeps.py (edit that, not this file).
#
#   cargo xtask sweep experiments/sweeps/{name}.toml
#
# Keys: see experiments/sweeps/README.md.
"""

BASE = """
[base]
count = {count}
seed = 0

[base.sampler]
kind = "ancestral"
respace = 100                # of the model's 1000 training levels
clip_x0 = 1.0
max_batch = 128              # the CPU's fastest batch for this UNet (bench eval)

[base.models]
shapes = "{model}"

[base.composition]
op = "model"
model = "shapes"

[eval]
samples = "uint8"
"""


def weight_pilot():
    name = "shapes-k-weight"
    out = [HEADER.format(title="Guidance weight of the shapes-k study, chosen once at k = 2 from "
                         "{1, 2, 4} by reverse-diffusion accuracy (3 seeds, a cell pair each).",
                         name=name)]
    out.append(f'name = "{name}"\n')
    out.append('description = "k = 2 cells composed as E_∅ + w Σ (E_c − E_∅) on the shapes-k '
               'model (configs/shapes-k.toml), reverse diffusion on 100 of its 1000 levels, '
               f'{COUNT} samples per cell; the cell pair differs per seed."\n')
    out.append('metrics = ["composition-accuracy", "nfe", "wall-time"]\n')
    out.append(BASE.format(count=COUNT, model=MODEL))
    for w in [1.0, 2.0, 4.0]:
        for seed in SEEDS:
            cells = cell_set(2, seed)
            out.append(f'\n[[list]]                # cells {cells}\nname = "w{w:g}-k2-s{seed}"\n')
            out.append(f'seed = {seed}\n"composition" = {composition(cells, w)}\n')
    return name, "".join(out)


def gate():
    name = "shapes-k-gate"
    out = [HEADER.format(title="The shapes-k model's gate (issue 25): k = 1 with reverse diffusion "
                         "≥ 90 % accuracy in every cell (128 samples each), and unconditional "
                         "samples' object counts within total variation 0.1 of the data's.",
                         name=name)]
    out.append(f'name = "{name}"\n')
    out.append(f'description = "Reverse diffusion (100 of 1000 levels) on the shapes-k model: each '
               f'of the 9 cells alone at guidance weight {WEIGHT} and at 1 (the conditional model '
               f'itself), {COUNT} samples each; and 512 unconditional samples scored by their '
               f'object counts against the data\'s uniform 1–5."\n')
    out.append('metrics = ["composition-accuracy", "object-counts", "nfe", "wall-time"]\n')
    out.append(BASE.format(count=COUNT, model=MODEL))
    out.append('\n[[list]]\nname = "unconditional"\ncount = 512\n'
               '"composition" = { op = "model", model = "shapes" }\n')
    for w in [WEIGHT, 1.0]:
        for c in range(CELLS):
            out.append(f'\n[[list]]\nname = "cell{c}-w{w:g}"\n'
                       f'"composition" = {composition([c], w)}\n')
    return name, "".join(out).replace(
        'metrics = ["composition-accuracy", "object-counts"',
        'metrics = ["composition-accuracy", "object-counts"')


def study():
    name = "shapes-k"
    out = [HEADER.format(title="The paper's composition claim at our scale (issue 25): accuracy "
                         "against the number k of composed objects, per sampler.", name=name)]
    out.append(f'name = "{name}"\n')
    k_mcmc = MCMC["steps_per_level"]
    out.append(
        'description = "k = 1…5 cells composed as E_∅ + w Σ_c (E_c − E_∅), '
        f'w = {WEIGHT} (chosen at k = 2), on the shapes-k model (configs/shapes-k.toml: 24×24, 3×3 '
        'cells, 1–5 objects, energy UNet, 1000 training levels), a different cell set per seed '
        f'(seeds 0–2), {COUNT} samples per cell, 100 levels. reverse: ancestral; '
        f'reverse-nfe: ancestral on {MCMC_NFE} levels, the NFE of the MCMC row (k ≥ 4); '
        f'{MCMC["kind"]}: reverse + {k_mcmc} {MCMC["kind"].upper()} steps per level in the '
        f'noisier half (levels 50–99), step a·β^b fitted by a 16-chain pilot to acceptance '
        f'{MCMC["band"]}; smc: grouped SMC, {SMC_P} particles per sample, ancestral proposal, '
        'exact energy weights, resampling within groups at ESS < 0.5 (k ≥ 2); smc-hmc: the same '
        f'+ {SMC_REJUVENATE["steps"]} HMC rejuvenation step per level in levels 0–99, step fitted '
        f'to acceptance {HMC_BAND} (k = 4)."\n')
    out.append('metrics = ["composition-accuracy", "acceptance", "ess", "nfe", "wall-time"]\n')
    out.append(BASE.format(count=COUNT, model=MODEL))
    rows = [
        ("reverse", {}),
        (MCMC["kind"], {
            "sampler.kind": f'"{MCMC["kind"]}"',
            "sampler.mode": '"reverse-then-same"',
            "sampler.steps_per_level": str(k_mcmc),
            "sampler.window": "[50, 99]",
            "sampler.fit_step_law": f'{{ band = {MCMC["band"]}, pilot_chains = 16 }}',
        }),
        ("reverse-nfe", {"sampler.respace": str(MCMC_NFE)}),
        ("smc", {
            "sampler.kind": '"smc"',
            "sampler.particles_per_sample": str(SMC_P),
            "sampler.ess_threshold": "0.5",
        }),
        ("smc-hmc", {
            "sampler.kind": '"smc"',
            "sampler.particles_per_sample": str(SMC_P),
            "sampler.ess_threshold": "0.5",
            "sampler.rejuvenate": f'{{ kind = "{SMC_REJUVENATE["kind"]}", steps = {SMC_REJUVENATE["steps"]} }}',
            "sampler.leapfrog": "2",
            "sampler.damping": "0.7",
            "sampler.window": "[0, 99]",
            "sampler.fit_step_law": f"{{ band = {HMC_BAND}, pilot_chains = 16 }}",
        }),
    ]
    out.append("\n# One [[list]] axis, outermost, so that the cheap rows of every k run first.\n")
    for label, patch in rows:
        out.append(f'\n[[list]]\nname = "{label}"\n')
        for key, value in patch.items():
            out.append(f'"{key}" = {value}\n')
    for k in KS:
        for seed in SEEDS:
            cells = cell_set(k, seed)
            out.append(f"\n[axes.cells.k{k}-s{seed}]            # cells {cells}\n")
            out.append(f'seed = {seed}\n"composition" = {composition(cells, WEIGHT)}\n')
    runs = {"reverse": KS, MCMC["kind"]: KS, "reverse-nfe": [4, 5], "smc": [2, 3, 4, 5],
            "smc-hmc": [4]}
    for label, ks in runs.items():
        for k in KS:
            if k in ks:
                continue
            for seed in SEEDS:
                out.append(f'\n[[exclude]]\nlist = "{label}"\ncells = "k{k}-s{seed}"\n')
    out.append('\n[report]\nseries = "list"\n')
    return name, "".join(out)


for name, text in [weight_pilot(), gate(), study()]:
    path = ROOT / "experiments" / "sweeps" / f"{name}.toml"
    path.write_text(text)
    print(f"wrote {path.relative_to(ROOT)}")
