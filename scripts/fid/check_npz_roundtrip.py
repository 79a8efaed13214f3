#!/usr/bin/env python3
"""Checks that an FID statistics file written by ebdiff-eval (`save_stats_npz`) is what
pytorch-fid and clean-fid expect: exactly the keys `mu` and `sigma`, little-endian float64,
C order, shapes (D,) and (D, D), finite, symmetric sigma.

    # any Rust-written file:
    python3 scripts/fid/check_npz_roundtrip.py STATS.npz

    # end to end: Rust streams synthetic features through FeatureStats and saves them; numpy
    # rebuilds the same features and compares np.mean / np.cov with the file:
    cargo run --release -p ebdiff-eval --example synthetic_stats_npz -- /tmp/rust_stats.npz 3000 64
    python3 scripts/fid/check_npz_roundtrip.py /tmp/rust_stats.npz --synthetic 3000 64

A documented manual check, not part of CI. Exits non-zero with a message on the first failure.
"""

import argparse
import sys
import zipfile

import numpy as np


def fail(message):
    sys.exit(f"FAIL: {message}")


def synthetic_features(rows, dim):
    """The features of examples/synthetic_stats_npz.rs, exactly (multiples of 1/32)."""
    i = np.arange(rows, dtype=np.int64)[:, None]
    j = np.arange(dim, dtype=np.int64)[None, :]
    return (((i * i * 7 + i * j * 13 + j * 5) % 257) / 32.0 - 4.0).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--synthetic", nargs=2, type=int, metavar=("ROWS", "DIM"),
                        help="also compare with np.mean / np.cov of the example's features")
    args = parser.parse_args()

    with zipfile.ZipFile(args.path) as archive:
        members = sorted(archive.namelist())
        if members != ["mu.npy", "sigma.npy"]:
            fail(f"{args.path}: members {members}, expected ['mu.npy', 'sigma.npy']")
        for name in members:
            with archive.open(name) as f:
                version = np.lib.format.read_magic(f)
                if version != (1, 0):
                    fail(f"{args.path}: {name} has .npy format {version}, expected (1, 0)")

    # The way pytorch-fid's compute_statistics_of_path reads a .npz.
    with np.load(args.path) as f:
        mu, sigma = f["mu"][:], f["sigma"][:]
    for key, array in (("mu", mu), ("sigma", sigma)):
        if array.dtype != np.dtype("<f8"):
            fail(f"{args.path}: {key} has dtype {array.dtype.str}, expected <f8")
        if not array.flags.c_contiguous:
            fail(f"{args.path}: {key} is not in C order")
        if not np.isfinite(array).all():
            fail(f"{args.path}: {key} has non-finite values")
    dim = mu.shape[0] if mu.ndim == 1 else fail(f"{args.path}: mu has shape {mu.shape}")
    if sigma.shape != (dim, dim):
        fail(f"{args.path}: sigma has shape {sigma.shape}, expected ({dim}, {dim})")
    if not np.array_equal(sigma, sigma.T):
        fail(f"{args.path}: sigma is not exactly symmetric")
    print(f"ok: {args.path}: mu {mu.dtype.str} {mu.shape}, sigma {sigma.dtype.str} {sigma.shape}")

    if args.synthetic:
        rows, expected_dim = args.synthetic
        if dim != expected_dim:
            fail(f"{args.path}: D = {dim}, but --synthetic says {expected_dim}")
        x = synthetic_features(rows, dim).astype(np.float64)
        mu_np, sigma_np = x.mean(axis=0), np.cov(x, rowvar=False)
        mu_gap = np.abs(mu - mu_np).max() / np.abs(mu_np).max()
        sigma_gap = np.abs(sigma - sigma_np).max() / np.abs(sigma_np).max()
        print(f"   vs numpy: mean max rel gap {mu_gap:.2e}, covariance max rel gap {sigma_gap:.2e}")
        if mu_gap > 1e-12 or sigma_gap > 1e-12:
            fail("statistics differ from np.mean / np.cov by more than 1e-12 relative")
        print("ok: matches np.mean / np.cov(rowvar=False)")


if __name__ == "__main__":
    main()
