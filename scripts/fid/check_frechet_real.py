#!/usr/bin/env python3
"""Fréchet distance on real feature statistics: ours vs pytorch-fid's scipy formula vs the exact
value. Takes two `.npz` files written by `cargo xtask fid-stats` (they carry the features).

The exact trace term: the non-zero eigenvalues of S1·S2 are those of K·Kᵀ with
K = X1ᶜ·X2ᶜᵀ/(n − 1) (centred features), so tr (S1 S2)^{1/2} is the nuclear norm of K, an SVD
of an N × N matrix with no square root of a matrix involved.

  cargo xtask fid-stats --data mnist-train --limit 2100 --out /tmp/a.npz
  cargo xtask fid-stats --data mnist-test --limit 2100 --out /tmp/b.npz
  cargo xtask fid /tmp/a.npz /tmp/b.npz             # ours
  python3 scripts/fid/check_frechet_real.py /tmp/a.npz /tmp/b.npz --ours <value printed above>
"""
import argparse
import warnings

import numpy as np
import scipy.linalg

p = argparse.ArgumentParser()
p.add_argument('a')
p.add_argument('b')
p.add_argument('--ours', type=float)
args = p.parse_args()
x1 = np.load(args.a)['features'].astype(np.float64)
x2 = np.load(args.b)['features'].astype(np.float64)
mu1, mu2 = x1.mean(0), x2.mean(0)
s1, s2 = np.cov(x1, rowvar=False), np.cov(x2, rowvar=False)
base = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2)
n1, n2 = len(x1), len(x2)
assert n1 == n2, 'the exact formula here pairs rows: use sets of equal size'
k = (x1 - mu1) @ (x2 - mu2).T / (n1 - 1)
exact = base - 2 * np.linalg.svd(k, compute_uv=False).sum()
with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)  # pytorch-fid's formula
scipy_fid = base - 2 * np.trace(covmean.real)
print(f'N = {n1}, D = {x1.shape[1]}, covariance rank <= {min(n1 - 1, x1.shape[1])}')
print(f'exact  {exact!r}')
print(f'scipy  {scipy_fid!r}  relative {(scipy_fid - exact) / exact:.2e}')
if args.ours is not None:
    print(f'ours   {args.ours!r}  relative to exact {(args.ours - exact) / exact:.2e}, '
          f'to scipy {(args.ours - scipy_fid) / scipy_fid:.2e}')
