"""QuickNet (Bannink et al., Larq-zoo `sota/quicknet.py`), with Small and Large variants.

    stem:        Conv3×3/2 (16) → BN → ReLU → DWConv3×3/2 → BN → Conv1×1 (64) → BN
    sections:    widths (64, 128, 256, 512), blocks (4, 4, 4, 4)   [Small: widths (32, 64, 256, 512);
                 Large: blocks (6, 8, 12, 6)]
    transition:  (where the width changes) ReLU → MaxPool2×2/1 (valid) → fixed blur DWConv3×3/2 → Conv1×1 → BN
    block:       x + BN(ReLU(BinaryConv3×3(sign_ste(x, clip 1.25); pad +1; weights SteSign(1.25), clip 1.25)))
    head:        ReLU → global average pool → Dense(num_classes)
"""
import numpy as np

from .. import nn
from .common import QuickNetStem, check_binarizer, parse_lab_blocks, scaled, stage_binarizer


class Transition(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2, stride=1)
        self.blur = nn.Conv2d(in_channels, in_channels, 3, stride=2, groups=in_channels, trainable=False)
        blur = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
        self.blur.fixed_weight.data[...] = blur.astype(np.float32)
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels, momentum=0.9, eps=1e-5)

    def forward(self, x):
        return self.bn(self.conv(self.blur(self.pool(self.relu(x)))))


class QuickNetBlock(nn.Module):
    def __init__(self, channels, binarizer):
        super().__init__()
        self.conv = nn.BinaryConv2d(channels, channels, 3, binarizer=binarizer, pad_value=1,
                                    weight_quantizer="ste_sign", weight_clip=1.25, input_clip=1.25)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm2d(channels, momentum=0.9, eps=1e-5)

    def forward(self, x):
        return x + self.bn(self.relu(self.conv(x)))


class QuickNet(nn.Module):
    widths = (64, 128, 256, 512)
    blocks_per_section = (4, 4, 4, 4)

    def __init__(self, num_classes=1000, width=1.0, binarizer="sign", lab_blocks="1111", in_channels=3):
        super().__init__()
        check_binarizer(binarizer)
        lab_blocks = parse_lab_blocks(lab_blocks)
        widths = [scaled(c, width) for c in self.widths]
        stem_width = scaled(64, width)
        self.stem = QuickNetStem(stem_width, in_channels)
        layers, channels = [], stem_width
        for section, (w, count) in enumerate(zip(widths, self.blocks_per_section)):
            if w != channels:
                layers.append(Transition(channels, w))
                channels = w
            layers += [QuickNetBlock(w, stage_binarizer(binarizer, lab_blocks, section)) for _ in range(count)]
        self.layers = layers
        self.relu = nn.ReLU()
        self.pool = nn.GlobalAvgPool()
        self.classifier = nn.Linear(channels, num_classes, initializer="glorot_normal")

    def forward(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.classifier(self.pool(self.relu(x)))


class QuickNetSmall(QuickNet):
    widths = (32, 64, 256, 512)


class QuickNetLarge(QuickNet):
    blocks_per_section = (6, 8, 12, 6)
