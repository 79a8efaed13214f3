#!/usr/bin/env python3
"""PyTorch counterpart of ``cargo xtask bench`` (crates/ebdiff-bench/), on the PyTorch twin of
ebdiff's networks (scripts/torch/ebdiff_torch.py).

    torch_bench.py train-step [--config FILE] [--batch 16] [--warmup 2] [--iters 5]
                              [--threads 2] [--json OUT] [--profile [--profile-steps 3]
                              [--profile-threads 1]]
    torch_bench.py eval [--config FILE] [--batch 16[,B2,...]] [--warmup 2] [--iters 10]
                        [--threads 2] [--json OUT]
    torch_bench.py params [--config FILE] [--export DIR ...]
    torch_bench.py fid-features --weights default_1.pt --images RAW --shape N,C,H,W [--batch 50]
                                [--features-out RAW] [--threads 2] [--json OUT]

``train-step`` times one DSM optimizer step of the score (eps) and of the energy
parameterization of the same network; ``eval`` times one sampling-time evaluation of E and ∇ₓE;
``fid-features`` runs the reference FID network on the images ``xtask bench fid-features`` wrote.
What is timed, and how it matches the Rust benchmark, is described in README.md next to this file.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "scripts" / "torch"))

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

import ebdiff_torch as et  # noqa: E402

DEFAULT_CONFIG = REPO / "configs" / "unet-small.toml"

# Burn's `AdamConfig::new()` (burn-optim 0.22): β₁ 0.9, β₂ 0.999, ε 1e-5, no weight decay, no
# AMSGrad, no clipping; bench.rs steps with lr 1e-4.
ADAM_LR = 1e-4
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-5
EVAL_LEVEL = 10  # bench.rs `eval`: every example at level 10


# ---------------------------------------------------------------------------------------------
# Config (ebdiff_trainer::config::ModelSection)


def load_model_section(path: Path | None) -> tuple[dict, Path]:
    """The ``[model]`` and ``[diffusion]`` tables of any config, the rest ignored, like
    ``ModelSection::load``: training configs work as they are, model-only configs such as
    ``configs/unet-small.toml`` too, and a config without ``[diffusion]`` gets linear, T = 1000.
    Returns a dict that ``ebdiff_torch.build_model`` accepts."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    cfg = et.load_config(path)
    if "model" not in cfg:
        raise SystemExit(f"{path}: no [model] table")
    diffusion = dict(cfg.get("diffusion") or {"kind": "linear", "timesteps": 1000})
    if "timesteps" not in diffusion:
        raise SystemExit(f"{path}: [diffusion] has no `timesteps`")
    t = int(diffusion["timesteps"])
    if not 2 <= t <= 100_000:
        raise SystemExit(f"{path}: diffusion.timesteps must be in 2..=100000, got {t}")
    return {"model": copy.deepcopy(cfg["model"]), "diffusion": diffusion}, path


def with_parameterization(section: dict, param: str) -> dict:
    """The same network with ``model.parameterization`` switched (bench.rs: ``score_cfg`` /
    ``energy_cfg``). ``zero_init_output`` left unset is re-derived for the new parameterization,
    as ebdiff's ``ModelConfig::zero_init`` does at init."""
    out = copy.deepcopy(section)
    out["model"]["parameterization"] = param
    return out


def linear_schedule(timesteps: int) -> tuple[Tensor, Tensor]:
    """(√ᾱ_k, σ_k = √(1 − ᾱ_k)) as f32 tables of ``ScheduleConfig::linear(T)``: β linear from
    1e-4·(1000/T) to 0.02·(1000/T), computed in f64 and rounded to f32 as in ``noise_batch``.
    bench.rs uses this schedule for every config (it ignores the config's schedule kind)."""
    scale = 1000.0 / timesteps
    a, b = 1e-4 * scale, 0.02 * scale
    betas = torch.tensor([a + (b - a) * k / (timesteps - 1) for k in range(timesteps)],
                         dtype=torch.float64)
    alpha_bar = torch.cumprod(1.0 - betas, dim=0)
    return alpha_bar.sqrt().float(), (1.0 - alpha_bar).sqrt().float()


def show(path: Path) -> str:
    """A path relative to the repository when it is inside it (for the printed headers)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # only settable before the first parallel work
        pass


def machine_info() -> dict:
    """What the timings depend on besides the code: threads, CPU count, load, OpenMP policy."""
    return {"torch_version": torch.__version__, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "cpu_count": os.cpu_count(),
            "load_avg_1min": os.getloadavg()[0],
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def machine_line() -> str:
    m = machine_info()
    line = (f"torch {m['torch_version']}, CPU, {m['threads']} threads "
            f"(interop {m['interop_threads']}), {m['cpu_count']} CPUs, "
            f"load average {m['load_avg_1min']:.2f}")
    if m["omp_wait_policy"]:
        line += f", OMP_WAIT_POLICY={m['omp_wait_policy']}"
    passive = (m["omp_wait_policy"] or "").upper() == "PASSIVE"
    if m["load_avg_1min"] > 0.5 and m["threads"] > 1 and not passive:
        line += ("\nwarning: the CPU is busy; with more than one thread OpenMP's spin-waiting "
                 "can slow small ops many-fold (README: OMP_WAIT_POLICY=PASSIVE, --threads 1)")
    return line


def median(xs: list[float]) -> float:
    """``times[len / 2]`` of the sorted times, as bench.rs (the upper median for even N)."""
    return sorted(xs)[len(xs) // 2]


def energy_form_name(section: dict) -> str:
    form = section["model"].get("energy_form", "reconstruction")
    return "".join(p.capitalize() for p in form.split("-"))  # Rust's {:?}: SquaredNorm


# ---------------------------------------------------------------------------------------------
# train-step


class Stepper:
    """One DSM optimizer step of a fresh twin, the body of bench.rs ``time_steps``."""

    def __init__(self, section: dict, batch: int, seed: int = 0):
        torch.manual_seed(seed)
        self.model = et.build_model(section).train()  # noise_batch sets `.training(true)`
        self.timesteps = self.model.spec.timesteps
        self.dim = self.model.data_dim
        self.batch = batch
        self.sqrt_ab, self.sigma = linear_schedule(self.timesteps)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=ADAM_LR, betas=ADAM_BETAS,
                                    eps=ADAM_EPS)
        self.gen = torch.Generator().manual_seed(seed)

    def draw_x0(self) -> Tensor:
        """x₀ ~ U[−1, 1] (drawn outside the timed region, as in bench.rs)."""
        return torch.rand(self.batch, self.dim, generator=self.gen) * 2.0 - 1.0

    def step(self, x0: Tensor, profiled: bool = False) -> float:
        rf = torch.profiler.record_function if profiled else _null_scope
        with rf("bench::noise_batch"):
            # noise_batch: k ~ U{0..T−1}, ε ~ N(0, I), x_t = √ᾱ_k x₀ + σ_k ε
            t = torch.randint(0, self.timesteps, (self.batch,), generator=self.gen)
            eps = torch.randn(self.batch, self.dim, generator=self.gen)
            x_t = self.sqrt_ab[t, None] * x0 + self.sigma[t, None] * eps
        self.opt.zero_grad(set_to_none=True)  # Burn's gradients are fresh every step
        if self.model.is_energy:
            # == model.eps(x_t, t, create_graph=True) (energy_and_eps), split for the profile
            x = x_t.detach().requires_grad_(True)
            with rf("bench::energy_forward"):
                e = self.model.energy(x, t)
            with rf("bench::grad_x (create_graph)"):
                (eps_hat,) = torch.autograd.grad(e.sum(), x, create_graph=True)
        else:
            with rf("bench::eps_forward"):
                eps_hat = self.model.eps(x_t, t)
        with rf("bench::loss_backward"):
            loss = (eps_hat - eps).square().mean()  # dsm_loss: mean over batch and dim
            loss.backward()
        with rf("bench::optimizer"):
            self.opt.step()
        return float(loss.detach())


class _null_scope:
    def __init__(self, *_):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False


def time_steps(section: dict, batch: int, warmup: int, iters: int) -> dict:
    s = Stepper(section, batch)
    times = []
    for i in range(warmup + iters):
        x0 = s.draw_x0()
        start = time.perf_counter()
        s.step(x0)  # CPU: synchronous; the loss read-back is the sync point
        if i >= warmup:
            times.append(time.perf_counter() - start)
    med = median(times)
    return {"median_s": med, "min_s": min(times), "images_per_s": batch / med,
            "peak_rss_mib": peak_rss_mib(), "times_s": times}


def cmd_train_step(args) -> None:
    if args.iters < 1 or args.batch < 1:
        raise SystemExit("--iters and --batch must be ≥ 1")
    section, path = load_model_section(args.config)
    params = param_count(et.build_model(section))
    shape = list(section["model"]["data_shape"])
    print(f"torch bench train-step: {machine_line()}")
    print(f"config {path.name}, batch {args.batch}, data shape {shape}, {params} parameters, "
          f"warm-up {args.warmup}, median of {args.iters}")
    score = time_steps(with_parameterization(section, "eps"), args.batch, args.warmup, args.iters)
    energy = time_steps(with_parameterization(section, "energy"), args.batch, args.warmup,
                        args.iters)
    energy_name = f"energy ({energy_form_name(section)})"
    print(f"{'parameterization':<26} {'median s':>10} {'min s':>10} {'images/s':>12} "
          f"{'peak RSS so far':>16}")
    for name, r in (("score (eps)", score), (energy_name, energy)):
        print(f"{name:<26} {r['median_s']:>10.4f} {r['min_s']:>10.4f} "
              f"{r['images_per_s']:>12.1f} {r['peak_rss_mib']:>12.0f} MiB")
    ratio = energy["median_s"] / score["median_s"]
    print(f"energy/score step-time ratio: {ratio:.2f}")
    print(f"parameters: {params}")
    prof = None
    if args.profile:
        prof = profile_energy(section, args.batch, args.profile_steps, args.profile_threads)
        torch.set_num_threads(args.threads)
    if args.json:
        out = {**machine_info(), "config": show(path), "params": params, "batch": args.batch,
               "warmup": args.warmup,
               "iters": args.iters, "energy_form": section["model"].get(
                   "energy_form", "reconstruction"),
               "score": score, "energy": energy, "ratio": ratio, "profile": prof}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


# ---------------------------------------------------------------------------------------------
# --profile


KINDS = ["conv forward", "conv backward / weight grads", "norms (GroupNorm/LayerNorm)",
         "attention / matmul", "elementwise & reductions", "optimizer", "other"]

_ELEMENTWISE = {
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "silu", "silu_",
    "silu_backward", "sigmoid", "sigmoid_backward", "square", "pow", "sqrt", "rsqrt", "exp",
    "sin", "cos", "where", "clamp", "clamp_min", "threshold", "sum", "mean", "var", "fill_",
    "zero_", "zeros_like", "ones_like", "addcmul_", "addcdiv_", "lerp_", "sgn", "abs",
    "maximum", "minimum", "mse_loss", "_foreach_add_", "_foreach_mul_", "_foreach_lerp_",
    "_foreach_addcmul_", "_foreach_addcdiv_", "_foreach_sqrt", "_foreach_div_",
}


def _base(name: str) -> str:
    return name.split("::")[-1].strip()


def _kind_by_name(name: str) -> str:
    low = name.lower()
    base = _base(name)
    if "convolution_backward" in low or "conv2d_backward" in low or "convolutionbackward" in low \
            or "_convolution_double_backward" in low:
        return KINDS[1]
    if "conv" in low:
        return KINDS[0]
    if "group_norm" in low or "layer_norm" in low:
        return KINDS[2]
    if any(k in low for k in ("mm", "matmul", "softmax", "linear")):
        return KINDS[3]
    if base in _ELEMENTWISE:
        return KINDS[4]
    return KINDS[6]


def classify_events(events) -> dict:
    """Self CPU time (µs) per kind, per op name within each kind, and per bench phase.

    Besides the op name, an op is attributed by what it runs under:
    * under ``Optimizer.step`` → optimizer;
    * under a norm module's forward (the twin builds GroupNorm/LayerNorm from mean, sub, square,
      sqrt, div, mul, add, like Burn), or under the autograd node of such an op, including the
      nodes that node creates in the create_graph VJP → norms;
    * a forward-conv kernel under a convolution backward (the double backward of the energy
      step calls convolutions) → conv backward.
    """
    evs = sorted(events, key=lambda e: e.time_range.start)
    node_is_norm: set[int] = set()  # sequence numbers of autograd nodes created by norm ops
    phase_of = {}
    kind_t = {k: 0.0 for k in KINDS}
    op_t: dict[str, dict[str, float]] = {k: {} for k in KINDS}
    phase_t: dict[str, float] = {}
    is_wrapper = "autograd::engine::evaluate_function: "
    for e in evs:
        chain = []
        p = e.cpu_parent
        while p is not None:
            chain.append(p)
            p = p.cpu_parent
        names = [a.name for a in chain]
        in_opt = any(n.startswith("Optimizer.") for n in names) or \
            e.name.startswith("Optimizer.")
        in_norm = "bench::norm" in names or any(
            a.name.startswith(is_wrapper) and a.sequence_nr in node_is_norm for a in chain)
        if e.name.startswith(is_wrapper) and e.sequence_nr in node_is_norm:
            in_norm = True
        if in_norm and e.sequence_nr is not None and e.sequence_nr >= 0 \
                and not e.name.startswith(is_wrapper):
            node_is_norm.add(e.sequence_nr)  # forward op of a norm: its node is a norm node
        phase = next((n for n in [e.name] + names if n.startswith("bench::")
                      and n != "bench::norm"), "(outside)")
        phase_of[e] = phase
        if e.name.startswith("bench::"):
            continue  # scope markers: their self time is Python overhead, counted as other
        if in_opt:
            kind = KINDS[5]
        elif in_norm:
            kind = KINDS[2]
        else:
            kind = _kind_by_name(e.name)
            if kind == KINDS[0] and any("backward" in n.lower() for n in names):
                kind = KINDS[1]
        us = e.self_cpu_time_total
        kind_t[kind] += us
        op_t[kind][e.name] = op_t[kind].get(e.name, 0.0) + us
        phase_t[phase] = phase_t.get(phase, 0.0) + us
    return {"kinds": kind_t, "ops": op_t, "phases": phase_t}


def profile_energy(section: dict, batch: int, steps: int, threads: int) -> dict:
    """Profiles `steps` energy steps on `threads` threads (default 1, like `bench --profile`'s
    child) and returns ms per step by kind and by phase."""
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.set_num_threads(threads)
    s = Stepper(with_parameterization(section, "energy"), batch)
    # mark norm forwards (instance-level wrapper, ebdiff_torch.py is untouched)
    for m in s.model.modules():
        if isinstance(m, (et.GroupNorm, et.LayerNorm)):
            def fwd(x, _orig=m.forward):
                with record_function("bench::norm"):
                    return _orig(x)
            m.forward = fwd
    s.step(s.draw_x0())  # warm-up outside the profile
    x0s = [s.draw_x0() for _ in range(steps)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for x0 in x0s:
            s.step(x0, profiled=True)
    res = classify_events(prof.events())
    total = sum(res["kinds"].values())
    print(f"\nprofile: {steps} energy steps, batch {batch}, {threads} thread(s), "
          f"self CPU time {total / 1e3:.1f} ms "
          f"({total / 1e3 / steps:.1f} ms per step, profiler overhead included)")
    print(f"{'kind':<32} {'ms/step':>9} {'share':>7}   top ops (ms/step)")
    for k in KINDS:
        t = res["kinds"][k]
        top = sorted(res["ops"][k].items(), key=lambda kv: -kv[1])[:3]
        tops = ", ".join(f"{_short(n)} {v / 1e3 / steps:.1f}" for n, v in top if v > 0)
        print(f"{k:<32} {t / 1e3 / steps:>9.1f} {100 * t / total:>6.1f}%   {tops}")
    print(f"\n{'phase':<32} {'ms/step':>9} {'share':>7}")
    for ph, t in sorted(res["phases"].items(), key=lambda kv: -kv[1]):
        print(f"{ph:<32} {t / 1e3 / steps:>9.1f} {100 * t / total:>6.1f}%")
    print("\nraw top 15 ops by self CPU time (torch.profiler, all profiled steps):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return {"threads": threads, "steps": steps,
            "kinds_ms_per_step": {k: v / 1e3 / steps for k, v in res["kinds"].items()},
            "phases_ms_per_step": {k: v / 1e3 / steps for k, v in res["phases"].items()}}


def _short(name: str) -> str:
    return name.replace("autograd::engine::evaluate_function: ", "eval_fn:")


# ---------------------------------------------------------------------------------------------
# eval


def cmd_eval(args) -> None:
    batches = [int(b) for b in str(args.batch).split(",") if b.strip()]
    if not batches or min(batches) < 1 or args.iters < 1:
        raise SystemExit("--batch needs sizes ≥ 1 and --iters ≥ 1")
    section, path = load_model_section(args.config)
    torch.manual_seed(0)
    model = et.build_model(section).eval()  # Conditioning::new: not training
    for p in model.parameters():
        p.requires_grad_(False)  # no parameter gradients: autograd only tracks x
    if EVAL_LEVEL >= model.spec.timesteps:
        raise SystemExit(f"eval uses level {EVAL_LEVEL}, the config has only "
                         f"{model.spec.timesteps} levels")
    params = param_count(model)
    param = "Energy" if model.is_energy else "Eps"
    shape = list(section["model"]["data_shape"])
    print(f"torch bench eval: {machine_line()}")
    print(f"config {path.name}, {param} model, "
          f"data shape {shape}, {params} parameters, warm-up {args.warmup}, "
          f"median of {args.iters}")
    print(f"{'batch':>8} {'median ms':>12} {'examples/s':>14}")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for b in batches:
        x = torch.randn(b, model.data_dim, generator=gen)
        t = torch.full((b,), EVAL_LEVEL, dtype=torch.long)
        times = []
        for i in range(args.warmup + args.iters):
            start = time.perf_counter()
            if model.is_energy:
                _, g = model.energy_and_eps(x, t)  # autograd.grad, create_graph=False
            else:
                with torch.no_grad():
                    g = model.eps(x, t)
            _ = float(g.sum())  # bench.rs: eps.sum().into_scalar()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        med = median(times)
        rows.append({"batch": b, "median_ms": med * 1e3, "min_ms": min(times) * 1e3,
                     "examples_per_s": b / med})
        print(f"{b:>8} {med * 1e3:>12.2f} {b / med:>14.0f}")
    if args.json:
        out = {**machine_info(), "config": show(path), "parameterization": param.lower(),
               "params": params, "level": EVAL_LEVEL,
               "warmup": args.warmup, "iters": args.iters, "batches": rows}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


# ---------------------------------------------------------------------------------------------
# fid-features


def cmd_fid_features(args) -> None:
    """The reference FID network (the TorchScript `default_1.pt` that `xtask fetch inception`
    converts) on the images `xtask bench fid-features` wrote: images/s, and the features for
    the Rust side to compare with its own."""
    import warnings

    import numpy as np
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit's deprecation notices
    sys.path.insert(0, str(REPO / "scripts" / "fid"))
    from inception_reference import features  # resize to 299 as the FID pipelines do

    n, c, h, w = (int(v) for v in args.shape.split(","))
    images = np.fromfile(args.images, dtype=np.uint8).reshape(n, c, h, w)
    hwc = list(images.transpose(0, 2, 3, 1))  # inception_reference takes uint8 HWC images
    net = torch.jit.load(str(args.weights)).eval()
    print(f"torch bench fid-features: {machine_line()}")
    features(net, hwc[:args.batch])  # warm-up batch, untimed
    start = time.perf_counter()
    feats = np.concatenate([features(net, hwc[i:i + args.batch])
                            for i in range(0, n, args.batch)]).astype(np.float32)
    seconds = time.perf_counter() - start
    print(f"{n} images {h}x{w}, batch {args.batch}: {seconds:.2f} s, {n / seconds:.2f} images/s")
    if args.features_out:
        feats.tofile(args.features_out)
    if args.json:
        out = {**machine_info(), "weights": show(Path(args.weights)), "images": n,
               "batch": args.batch, "seconds": seconds, "images_per_s": n / seconds}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# params


def cmd_params(args) -> None:
    """Parameter count of the twin of a config, and, for export folders, a strict load of
    ebdiff's tensors (every name and shape must match) with the count on both sides."""
    section, path = load_model_section(args.config)
    model = et.build_model(section)
    print(f"{show(path)}: {len(list(model.parameters()))} tensors, {param_count(model)} "
          f"parameters (twin, build_model)")
    ok = True
    for d in args.export or []:
        from safetensors import safe_open

        with safe_open(str(Path(d) / "model.safetensors"), framework="pt") as f:
            names = list(f.keys())
            n_file = sum(math.prod(f.get_slice(k).get_shape()) for k in names)
        try:
            m = et.load_ebdiff(d)  # strict: raises on any missing/extra/mis-shaped tensor
        except ValueError as e:
            print(f"{d}: does NOT load strictly into the twin:\n{e}")
            ok = False
            continue
        n_twin = param_count(m)
        same = n_twin == n_file and len(names) == len(list(m.parameters()))
        ok &= same
        print(f"{d}: ebdiff export {len(names)} tensors, {n_file} parameters; twin of its "
              f"config.toml {len(list(m.parameters()))} tensors, {n_twin} parameters; names and "
              f"shapes {'match' if same else 'DIFFER'}")
    if not ok:
        raise SystemExit(1)


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p, iters: int, batch_default: str, batch_type):
        p.add_argument("--config", type=Path, default=None,
                       help="any config with a [model] table (default: configs/unet-small.toml)")
        p.add_argument("--batch", type=batch_type, default=batch_type(batch_default))
        p.add_argument("--warmup", type=int, default=2)
        p.add_argument("--iters", type=int, default=iters)
        p.add_argument("--threads", type=int, default=2,
                       help="torch intra- and inter-op threads (default 2)")
        p.add_argument("--json", type=Path, default=None, help="write the results here")

    ts = sub.add_parser("train-step", help="time one DSM optimizer step, score vs energy")
    common(ts, 5, "16", int)
    ts.add_argument("--profile", action="store_true",
                    help="then profile a few energy steps with torch.profiler")
    ts.add_argument("--profile-steps", type=int, default=3)
    ts.add_argument("--profile-threads", type=int, default=1,
                    help="threads while profiling (default 1, as `xtask bench --profile`)")
    ev = sub.add_parser("eval", help="time one energy + ∇ₓE evaluation per batch size")
    common(ev, 10, "16", str)
    pa = sub.add_parser("params", help="parameter count; strict check against ebdiff exports")
    pa.add_argument("--config", type=Path, default=None)
    pa.add_argument("--export", type=Path, nargs="*",
                    help="folders of `xtask export` (config.toml + model.safetensors)")
    pa.add_argument("--threads", type=int, default=2)
    fi = sub.add_parser("fid-features", help="images/s of the FID network on given images")
    fi.add_argument("--weights", type=Path, required=True, help="TorchScript default_1.pt")
    fi.add_argument("--images", type=Path, required=True, help="raw uint8 NCHW pixels")
    fi.add_argument("--shape", required=True, help="N,C,H,W of --images")
    fi.add_argument("--batch", type=int, default=50)
    fi.add_argument("--features-out", type=Path, default=None, help="raw f32 [N, 2048] here")
    fi.add_argument("--threads", type=int, default=2)
    fi.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.threads < 1:
        raise SystemExit("--threads must be ≥ 1")
    set_threads(args.threads)
    {"train-step": cmd_train_step, "eval": cmd_eval, "params": cmd_params,
     "fid-features": cmd_fid_features}[args.cmd](args)


if __name__ == "__main__":
    main()
