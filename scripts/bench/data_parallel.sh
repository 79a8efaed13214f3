#!/usr/bin/env bash
# Data-parallel scaling on one machine: the small UNet's energy step at global batch 16 on
# 1 rank (all cores), 1 rank (1 core) and 2 ranks (1 core each), 3 repetitions each, plus the bare
# MPI all-reduce by size on 2 ranks. Needs the MPI build (README, "Several GPUs or machines"):
#   cargo build --release --workspace --features xtask/mpi
#   scripts/bench/data_parallel.sh experiments/bench/data-parallel
set -euo pipefail
out=${1:-experiments/bench/data-parallel}
mkdir -p "$out"
x=target/release/xtask
mpirun=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && mpirun+=(--allow-run-as-root)
for rep in 1 2 3; do
  "$x" bench data-parallel --iters 8 --sizes 1000 --json "$out/np1-all-cores-$rep.json"
  RAYON_NUM_THREADS=1 "$x" bench data-parallel --iters 8 --sizes 1000 --json "$out/np1-1-core-$rep.json"
  "${mpirun[@]}" -np 2 "$x" bench data-parallel --iters 8 \
    --sizes 10000,100000,1000000,10000000,35700000 --json "$out/np2-$rep.json"
done
