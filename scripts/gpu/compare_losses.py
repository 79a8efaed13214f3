#!/usr/bin/env python3
"""Where two training runs' loss curves part: step by step, from two metrics.jsonl files.

    python3 scripts/gpu/compare_losses.py REFERENCE/metrics.jsonl OTHER/metrics.jsonl

Both runs must log every step (`log_every = 1`) from the same seed, so that they start from the
same weights and draw the same batches; then the first step whose losses differ is where the
arithmetic (kernel, precision, reduction order) first changes the trajectory, and the later
steps show whether the difference grows (chaotic training) or stays at round-off. Standard
library only (it also runs on the GPU machine).
"""
import json
import sys


def losses(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                out[int(rec["step"])] = float(rec["loss"])
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = losses(sys.argv[1]), losses(sys.argv[2])
    steps = sorted(set(a) & set(b))
    if not steps:
        sys.exit("error: the two runs share no logged step")
    rel = [(s, abs(a[s] - b[s]) / max(abs(a[s]), 1e-30)) for s in steps]
    print(f"{len(steps)} common steps ({steps[0]}..{steps[-1]})")
    for tol in (1e-6, 1e-4, 1e-2, 1e-1):
        first = next((s for s, r in rel if r > tol), None)
        where = f"step {first}" if first is not None else "never"
        print(f"first relative difference > {tol:g}: {where}")
    # How the gap evolves: the largest relative difference in each tenth of the run.
    n = len(rel)
    for i in range(10):
        chunk = rel[i * n // 10:(i + 1) * n // 10]
        if chunk:
            s, r = max(chunk, key=lambda p: p[1])
            print(f"  steps {chunk[0][0]:>6}-{chunk[-1][0]:<6} max rel diff {r:.2e} (step {s})")
    tail = steps[-max(1, n // 10):]
    mean = lambda d: sum(d[s] for s in tail) / len(tail)
    print(f"mean loss over the last {len(tail)} steps: {mean(a):.5f} vs {mean(b):.5f}")


if __name__ == "__main__":
    main()
