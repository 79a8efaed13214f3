#!/usr/bin/env python3
"""Checks the PyTorch twin against ebdiff exports.

    python compare.py DIR [DIR ...] [--json OUT.json] [--tol 1e-5]

Each DIR is written by ``cargo xtask export`` and holds config.toml, model.safetensors and
probe.safetensors (x, t, [labels], eps, [energy]). The twin is evaluated in float64 (weights
converted from f32); for energy models E and ∇ₓE = autograd.grad(E) are compared with the
probe's energy and eps (ebdiff's explicit-VJP ∇ₓE), for eps models the backbone output with eps.
Errors are max |twin − ebdiff| / max |ebdiff|. Exit status 1 if any error exceeds the tolerance
(or a folder fails to load).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ebdiff_torch import load_ebdiff  # noqa: E402


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    want = want.to(torch.float64)
    scale = want.abs().max().item()
    diff = (got.to(torch.float64) - want).abs().max().item()
    return diff / scale if scale > 0 else diff


def compare(directory: Path) -> dict:
    model = load_ebdiff(directory, dtype=torch.float64)
    probe = load_file(str(directory / "probe.safetensors"))
    x = probe["x"].to(torch.float64)
    t = probe["t"].to(torch.long)
    labels = probe["labels"].to(torch.long) if "labels" in probe else None
    spec = model.spec
    row = {
        "dir": str(directory),
        "backbone": spec.backbone["kind"],
        "parameterization": spec.parameterization,
        "form": spec.energy_form if model.is_energy else "eps",
        "n": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "classes": spec.num_classes,
    }
    if model.is_energy:
        e, grad = model.energy_and_eps(x, t, labels)
        row["energy_rel_err"] = rel_err(e.detach(), probe["energy"])
        row["grad_rel_err"] = rel_err(grad, probe["eps"])
        row["max_abs_energy"] = probe["energy"].abs().max().item()
        row["max_abs_grad"] = probe["eps"].abs().max().item()
    else:
        with torch.no_grad():
            eps = model.eps(x, t, labels)
        row["eps_rel_err"] = rel_err(eps, probe["eps"])
        row["max_abs_eps"] = probe["eps"].abs().max().item()
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="ebdiff export folders")
    ap.add_argument("--json", type=Path, help="write the measured errors here")
    ap.add_argument("--tol", type=float, default=1e-5, help="largest accepted relative error")
    args = ap.parse_args()

    rows, failed = [], False
    w = max(len("folder"), *(len(str(d)) for d in args.dirs))
    header = f"{'folder':<{w}} {'backbone':<8} {'form':<15} {'E rel err':>10} {'∇E/ε̂ rel err':>13}"
    print(header)
    for d in args.dirs:
        try:
            row = compare(d)
        except Exception as exc:  # report and keep checking the other folders
            print(f"{str(d):<{w}} ERROR: {exc}")
            rows.append({"dir": str(d), "error": str(exc)})
            failed = True
            continue
        errs = [row.get(k) for k in ("energy_rel_err", "grad_rel_err", "eps_rel_err")]
        ok = all(v <= args.tol for v in errs if v is not None)
        row["pass"] = ok
        failed |= not ok
        e = f"{row['energy_rel_err']:.2e}" if "energy_rel_err" in row else "-"
        g = row.get("grad_rel_err", row.get("eps_rel_err"))
        print(f"{str(d):<{w}} {row['backbone']:<8} {row['form']:<15} {e:>10} {g:>13.2e}"
              f"  {'ok' if ok else 'FAIL'}")
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps({"tol": args.tol, "results": rows}, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
