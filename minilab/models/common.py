"""Pieces shared by the model files: stage masks, width scaling, the QuickNet stem, the residual block of
Bi-Real / LAB-BNN."""
from .. import nn
from ..ops.binarizers import ALL_BINARIZERS


def parse_lab_blocks(mask, stages=4):
    """'1011' / (1, 0, 1, 1) / [True, …] → a tuple of 4 booleans, one per residual stage."""
    if isinstance(mask, str):
        if len(mask) != stages or set(mask) - {"0", "1"}:
            raise ValueError(f"lab_blocks must be {stages} characters of 0/1 (one per stage), got {mask!r}")
        return tuple(ch == "1" for ch in mask)
    mask = tuple(bool(b) for b in mask)
    if len(mask) != stages:
        raise ValueError(f"lab_blocks needs {stages} flags (one per stage), got {len(mask)}")
    return mask


def check_binarizer(binarizer):
    if binarizer not in ALL_BINARIZERS:
        raise ValueError(f"unknown binarizer {binarizer!r}; choose from {', '.join(ALL_BINARIZERS)}")
    return binarizer


def stage_binarizer(binarizer, lab_blocks, stage):
    """LAB only where the stage's lab_blocks bit is set; elsewhere the model's STE-sign baseline."""
    if binarizer == "lab" and not lab_blocks[stage]:
        return "sign"
    return binarizer


def scaled(channels, width):
    return max(1, int(round(channels * width)))


class QuickNetStem(nn.Module):
    """Conv3×3/2 (C/4) → BN → ReLU → depthwise 3×3/2 → BN (no γ, β) → Conv1×1 (C) → BN.  Spatial /4."""

    def __init__(self, out_channels, in_channels=3):
        super().__init__()
        mid = max(1, out_channels // 4)
        self.conv = nn.Conv2d(in_channels, mid, 3, stride=2, initializer="he_normal")
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu = nn.ReLU()
        self.depthwise = nn.Conv2d(mid, mid, 3, stride=2, groups=mid, initializer="he_normal")
        self.bn2 = nn.BatchNorm2d(mid, scale=False, center=False)
        self.pointwise = nn.Conv2d(mid, out_channels, 1, initializer="he_normal")
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv(x)))
        x = self.bn2(self.depthwise(x))
        return self.bn3(self.pointwise(x))


class ResidualBinaryBlock(nn.Module):
    """Bi-Real / LAB-BNN block: one binary 3×3 conv per residual connection.

        shortcut = x                                   (same width)
                 = BN(Conv1×1(AvgPool2×2(x)))          (width changes; stride 2)
        out      = BN(BinaryConv3×3(x)) + shortcut  → PReLU (LAB-BNN only)
    """

    def __init__(self, in_channels, out_channels, stride, binarizer, prelu=False, pad_value=0, approx_weights=False):
        super().__init__()
        self.downsample = in_channels != out_channels or stride != 1
        if self.downsample:
            self.pool = nn.AvgPool2d(2, stride)
            self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1)
            self.shortcut_bn = nn.BatchNorm2d(out_channels, momentum=0.8)
        self.conv = nn.BinaryConv2d(in_channels, out_channels, 3, stride=stride, binarizer=binarizer,
                                    pad_value=pad_value)
        self.bn = nn.BatchNorm2d(out_channels, momentum=0.8)
        self.prelu = nn.PReLU(out_channels) if prelu else None

    def forward(self, x):
        shortcut = self.shortcut_bn(self.shortcut_conv(self.pool(x))) if self.downsample else x
        out = self.bn(self.conv(x)) + shortcut
        return self.prelu(out) if self.prelu is not None else out


def residual_stages(widths, blocks_per_stage, stem_channels, binarizer, lab_blocks, prelu, pad_value=0):
    """The 4 stages of Bi-Real / LAB-BNN: the first block of stages 2–4 halves the map and widens it."""
    blocks, in_ch = [], stem_channels
    for stage, (width, count) in enumerate(zip(widths, blocks_per_stage)):
        for i in range(count):
            stride = 2 if (stage > 0 and i == 0) else 1
            blocks.append(ResidualBinaryBlock(in_ch, width, stride, stage_binarizer(binarizer, lab_blocks, stage),
                                              prelu=prelu, pad_value=pad_value))
            in_ch = width
    return blocks
