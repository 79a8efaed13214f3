#!/usr/bin/env python3
"""Re-saves the TorchScript FID network's weights under pytorch-fid's state-dict names
(torchvision Inception-v3 layout: `Mixed_6b.branch7x7dbl_5.conv.weight`, `.bn.weight` = 1,
`.bn.bias`, `.bn.running_mean`, `.bn.running_var`) in the legacy torch.save format that
`pt_inception-2015-12-05-6726825d.pth` (2019) uses. The file exercises the pytorch-fid import path:

  /usr/bin/python3 scripts/fid/make_pytorch_fid_layout.py datasets/inception/default_1.pt /tmp/pt_layout.pth
  cargo xtask fetch inception --from /tmp/pt_layout.pth --root /tmp/ptfid
  # features must equal those of the TorchScript import:
  cargo xtask fid-stats --folder datasets/foolbox-cifar10 --out /tmp/a.npz
  cargo xtask fid-stats --folder datasets/foolbox-cifar10 --out /tmp/b.npz --weights /tmp/ptfid/inception

The name table below is written from torchvision's `inception.py` block definitions.
"""
import sys

import torch

A = {'conv': 'branch1x1', 'tower.conv': 'branch5x5_1', 'tower.conv_1': 'branch5x5_2',
     'tower_1.conv': 'branch3x3dbl_1', 'tower_1.conv_1': 'branch3x3dbl_2',
     'tower_1.conv_2': 'branch3x3dbl_3', 'tower_2.conv': 'branch_pool'}
B = {'conv': 'branch3x3', 'tower.conv': 'branch3x3dbl_1', 'tower.conv_1': 'branch3x3dbl_2',
     'tower.conv_2': 'branch3x3dbl_3'}
C = {'conv': 'branch1x1', 'tower.conv': 'branch7x7_1', 'tower.conv_1': 'branch7x7_2',
     'tower.conv_2': 'branch7x7_3', 'tower_1.conv': 'branch7x7dbl_1',
     'tower_1.conv_1': 'branch7x7dbl_2', 'tower_1.conv_2': 'branch7x7dbl_3',
     'tower_1.conv_3': 'branch7x7dbl_4', 'tower_1.conv_4': 'branch7x7dbl_5',
     'tower_2.conv': 'branch_pool'}
D = {'tower.conv': 'branch3x3_1', 'tower.conv_1': 'branch3x3_2', 'tower_1.conv': 'branch7x7x3_1',
     'tower_1.conv_1': 'branch7x7x3_2', 'tower_1.conv_2': 'branch7x7x3_3',
     'tower_1.conv_3': 'branch7x7x3_4'}
E = {'conv': 'branch1x1', 'tower_conv': 'branch3x3_1', 'tower_mixed_conv': 'branch3x3_2a',
     'tower_mixed_conv_1': 'branch3x3_2b', 'tower_1_conv': 'branch3x3dbl_1',
     'tower_1_conv_1': 'branch3x3dbl_2', 'tower_1_mixed_conv': 'branch3x3dbl_3a',
     'tower_1_mixed_conv_1': 'branch3x3dbl_3b', 'tower_2_conv': 'branch_pool'}
BLOCKS = {'mixed': ('Mixed_5b', A), 'mixed_1': ('Mixed_5c', A), 'mixed_2': ('Mixed_5d', A),
          'mixed_3': ('Mixed_6a', B), 'mixed_4': ('Mixed_6b', C), 'mixed_5': ('Mixed_6c', C),
          'mixed_6': ('Mixed_6d', C), 'mixed_7': ('Mixed_6e', C), 'mixed_8': ('Mixed_7a', D),
          'mixed_9': ('Mixed_7b', E), 'mixed_10': ('Mixed_7c', E)}
STEM = {'conv': 'Conv2d_1a_3x3', 'conv_1': 'Conv2d_2a_3x3', 'conv_2': 'Conv2d_2b_3x3',
        'conv_3': 'Conv2d_3b_1x1', 'conv_4': 'Conv2d_4a_3x3'}

src, dst = sys.argv[1], sys.argv[2]
sd = torch.jit.load(src, map_location='cpu').state_dict()
out = {}
for key, value in sd.items():
    layer, param = key[len('net.layers.'):].rsplit('.', 1)
    block, _, rest = layer.partition('.')
    name = STEM[layer] if layer in STEM else f'{BLOCKS[block][0]}.{BLOCKS[block][1][rest]}'
    if param == 'weight':
        out[f'{name}.conv.weight'] = value.clone()
        out[f'{name}.bn.weight'] = torch.ones(value.shape[0])
    else:
        out[f'{name}.bn.' + {'beta': 'bias', 'mean': 'running_mean', 'var': 'running_var'}[param]] = value.clone()
out['fc.weight'] = torch.zeros(1008, 2048)  # pytorch-fid's file carries the logits layer too
torch.save(out, dst, _use_new_zipfile_serialization=False)
print(f'{len(out)} tensors -> {dst}')
