#!/usr/bin/env python3
"""Writes a PyTorch-initialized twin of an ebdiff experiment config as an ebdiff safetensors file.

    python export_init.py CONFIG.toml OUT.safetensors [--seed S]

The weights are drawn by PyTorch (``torch.manual_seed(S)``) from the same distributions ebdiff
uses (U(±1/√fan_in) for linear/conv weights and biases, zeros for the output layers when
``model.zero_init_output`` is on, N(0, 1) time and class tables, γ = 1 / β = 0 for norms), and
saved in ebdiff's names and layout, so that

    cargo xtask train --config CONFIG.toml --init-from OUT.safetensors --out RUN

starts training from them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ebdiff_torch import build_model, load_config, save_ebdiff  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path, help="ebdiff experiment config (uses [model], [diffusion])")
    ap.add_argument("out", type=Path, help="output .safetensors")
    ap.add_argument("--seed", type=int, default=0, help="torch.manual_seed for the init")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    model = build_model(load_config(args.config))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_ebdiff(model, args.out, {"init_seed": str(args.seed), "config": str(args.config)})
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: {len(list(model.parameters()))} tensors, {n} parameters "
          f"({model.spec.backbone['kind']}, {model.spec.parameterization})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
