"""nn.Conv3d and nn.ConvTranspose2d for MuseGAN's patch-shaped layers, computed as one matrix product.

Almost every convolution in MuseGAN has stride == kernel: it cuts its input into non-overlapping patches (the
12 pitches of an octave, two 16ths) or spreads each input cell into one. Such a layer is a matrix product
on the patches, which on a CPU ran a training step 1.7x faster than torch's convolution kernels (measured
on one thread, the shipped quarter-width model: 3.0 vs 1.75 s per WGAN-GP step; see the plugin's README).
These subclasses keep nn.Conv3d's and nn.ConvTranspose2d's parameters, layouts and results, and compute
inside their own forward (so FSDP gathers their weights as for any module); a layer whose windows overlap
or pad falls back to the ordinary convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _patches(kernel, stride, sizes, divides: bool) -> bool:
    """Whether every axis is cut into (or, transposed, built of) whole non-overlapping patches: its stride is its
    kernel, or one window covers it all (a convolution's input of the kernel's size, a transposed one's of size 1)."""
    whole = [size == k for k, size in zip(kernel, sizes)] if divides else [size == 1 for size in sizes]
    tiles = [s == k and (size % k == 0 if divides else True) for k, s, size in zip(kernel, stride, sizes)]
    return all(a or b for a, b in zip(whole, tiles))


class PatchConv3d(nn.Conv3d):
    """nn.Conv3d; with non-overlapping windows and no padding, one matmul over the patches."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kd, kh, kw), (n, cin, d, h, w) = self.kernel_size, x.shape
        if not _patches(self.kernel_size, self.stride, (d, h, w), divides=True) or self.padding != (0, 0, 0) \
                or self.groups != 1 or self.dilation != (1, 1, 1):
            return super().forward(x)
        patches = x.view(n, cin, d // kd, kd, h // kh, kh, w // kw, kw).permute(0, 2, 4, 6, 1, 3, 5, 7)
        y = F.linear(patches.reshape(n, d // kd, h // kh, w // kw, -1), self.weight.flatten(1), self.bias)
        return y.permute(0, 4, 1, 2, 3)                 # (N, Cout, D', H', W'), a view: the next layer reshapes


class PatchConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d; with non-overlapping outputs and no padding, one matmul that spreads each cell into a patch."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        (kh, kw), (n, cin, h, w) = self.kernel_size, x.shape
        if not _patches(self.kernel_size, self.stride, (h, w), divides=False) or self.padding != (0, 0) \
                or self.output_padding != (0, 0) or output_size is not None or self.groups != 1 \
                or self.dilation != (1, 1):
            return super().forward(x, output_size)
        cout = self.out_channels
        y = x.permute(0, 2, 3, 1).reshape(-1, cin) @ self.weight.reshape(cin, cout * kh * kw)
        y = y.view(n, h, w, cout, kh, kw).permute(0, 3, 1, 4, 2, 5).reshape(n, cout, h * kh, w * kw)
        return y + self.bias.view(1, cout, 1, 1)
