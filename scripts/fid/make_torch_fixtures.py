#!/usr/bin/env python3
"""Tiny PyTorch files in every format our reader supports (crates/ebdiff-eval/tests/fixtures/torch/).

Run with Debian's python3-torch: /usr/bin/python3 scripts/fid/make_torch_fixtures.py
Values are deterministic: tensor `a` = arange(6).reshape(2, 3) + 0.5, `b` = a transposed (a
non-contiguous view sharing a's storage), `c` = [-1.25] as an nn.Parameter.
"""
import os
from typing import List

import torch

out = os.path.join(os.path.dirname(__file__), '../../crates/ebdiff-eval/tests/fixtures/torch')
os.makedirs(out, exist_ok=True)

a = torch.arange(6, dtype=torch.float32).reshape(2, 3) + 0.5
state = {'layer.a': a, 'layer.b': a.t(), 'c': torch.nn.Parameter(torch.tensor([-1.25]))}
torch.save(state, os.path.join(out, 'state_dict_zip.pth'))
torch.save(state, os.path.join(out, 'state_dict_legacy.pth'), _use_new_zipfile_serialization=False)


class Inner(torch.nn.Module):
    stride: int
    padding: List[int]

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(a.clone())
        self.stride = 2
        self.padding = [0, 3]

    def forward(self, x):
        return x * self.a.sum() * self.stride * self.padding[1]


class Outer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()
        self.c = torch.nn.Parameter(torch.tensor([-1.25]))

    def forward(self, x):
        return self.inner(x) + self.c


torch.jit.save(torch.jit.script(Outer()), os.path.join(out, 'script_module.pt'))
print(sorted(os.listdir(out)))
