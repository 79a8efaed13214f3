#!/usr/bin/env bash
# Where the trained compositions of smc2d put their mass at level 0 (grid integral of
# exp(f(x, t₀)), `examples/level0_mass.rs`), next to the shares of the sweep's samples.
# Run from the repository root after the sweep:  bash experiments/sweeps/smc2d/model-mass/run.sh
set -euo pipefail
cargo build --release --workspace --examples -q
here=experiments/sweeps/smc2d/model-mass
cells=experiments/sweeps/smc2d/cells
mass=target/release/examples/level0_mass
samples() { ls $cells/$1-{ancestral,hmc,smc,smc-hmc}-seed[0-9]-*/samples.npy; }
{
  $mass $here/oracle-product.toml "0,0.5;0,-0.5"
  $mass $here/trained-product.toml "0,0.5;0,-0.5" $(samples trained-product)
  $mass $here/trained-negation.toml "0.5,0.5;-0.5,0.5;0.5,-0.5;-0.5,-0.5" $(samples trained-negation)
  $mass $here/trained-bg-product.toml "0,0.5;0,-0.5" $(samples trained-bg-product)
  $mass $here/trained-bg-negation.toml "0.5,0.5;-0.5,0.5;0.5,-0.5;-0.5,-0.5" $(samples trained-bg-negation)
  $mass $here/trained-mixture.toml "-0.5,-0.5;-0.5,0;-0.5,0.5;0.5,-0.5;0.5,0;0.5,0.5" $(samples trained-mixture)
} | tee $here/results.txt
