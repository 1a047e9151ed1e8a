"""Inception Score (Salimans et al. 2016) and the 2015 Inception network it is computed with.

The network is torchvision's Inception3 with the blocks of the 2015 TensorFlow graph (average pools
that do not count padding, a max pool in the last block) and 1008 outputs, loading the port of the
2015-12-05 weights that pytorch-fid publishes and torch-fidelity uses (sha256 6726825d…). As in
torch-fidelity and the original TF code, IS is taken on the logits without the final bias.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vqclip.errors import ConfigError

__all__ = ["inception_score", "build_inception_2015", "InceptionClassifier"]


def inception_score(probs, splits: int = 1) -> tuple[float, float]:
    """(mean, std) of exp(E_x KL(p(y|x) || p(y))) over `splits` equal parts of an (N, C) probability array."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1:
        raise ConfigError(f"inception_score: probabilities of shape {p.shape} are not usable; need (N, classes)")
    if splits < 1 or splits > p.shape[0]:
        raise ConfigError(f"inception_score: splits={splits} is not allowed for {p.shape[0]} samples; use 1..{p.shape[0]}")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        # 0·log 0 = 0: classes with zero probability add nothing to the KL
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


def _fid_blocks():
    from torchvision.models import inception as tv

    class BlockA(tv.InceptionA):
        def _forward(self, x):
            branch_pool = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
            return [self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                    self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))), self.branch_pool(branch_pool)]

    class BlockC(tv.InceptionC):
        def _forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            d = self.branch7x7dbl_1(x)
            for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
                d = layer(d)
            pool = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
            return [self.branch1x1(x), b7, d, self.branch_pool(pool)]

    def block_e(max_pool: bool):
        class BlockE(tv.InceptionE):
            def _forward(self, x):
                b3 = self.branch3x3_1(x)
                b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
                d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
                d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
                # the 2015 graph's last block max-pools here (a bug in the original that FID keeps)
                pool = F.max_pool2d(x, 3, stride=1, padding=1) if max_pool else F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
                return [self.branch1x1(x), b3, d, self.branch_pool(pool)]

        return BlockE

    return BlockA, BlockC, block_e(False), block_e(True)


class InceptionClassifier(nn.Module):
    """Images (B,3,H,W) in [0,1] -> (B, 1008) class probabilities from the bias-free logits."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax of the logits without the fc bias)."""
        n = self.net
        x = F.interpolate(x01.float(), size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
                     "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(n, name)(x)
        features = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return torch.softmax(features @ n.fc.weight.T, dim=1)


def build_inception_2015() -> nn.Module:
    """torchvision's Inception3 rebuilt with the 2015 graph's blocks and 1008 classes (random weights)."""
    from torchvision.models import inception as tv

    block_a, block_c, block_e1, block_e2 = _fid_blocks()
    net = tv.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = block_a(192, 32), block_a(256, 64), block_a(288, 64)
    net.Mixed_6b, net.Mixed_6c = block_c(768, 128), block_c(768, 160)
    net.Mixed_6d, net.Mixed_6e = block_c(768, 160), block_c(768, 192)
    net.Mixed_7b, net.Mixed_7c = block_e1(1280), block_e2(2048)
    return net
