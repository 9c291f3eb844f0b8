"""Bi-RealNet-18 (Liu et al., 2018) as in Larq-zoo: a real-valued shortcut around *every* binary conv.

    stem:    Conv7×7/2 (64) → BN → MaxPool3×3/2                                             224 → 56 px
    stages:  4 × 4 ResidualBinaryBlock(binarizer → BinaryConv3×3 → BN, + shortcut)  widths 64, 128, 256, 512
    head:    global average pool → Dense(num_classes)

The released LAB baseline binarizes with STE sign (binarizer="sign"); upstream Bi-Real uses "approxsign"."""
from .. import nn
from .common import check_binarizer, parse_lab_blocks, residual_stages, scaled


class BiRealNet18(nn.Module):
    def __init__(self, num_classes=1000, width=1.0, binarizer="sign", lab_blocks="1111", pad_value=0, in_channels=3):
        super().__init__()
        check_binarizer(binarizer)
        lab_blocks = parse_lab_blocks(lab_blocks)
        widths = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.stem_conv = nn.Conv2d(in_channels, widths[0], 7, stride=2)
        self.stem_bn = nn.BatchNorm2d(widths[0], momentum=0.8)
        self.stem_pool = nn.MaxPool2d(3, 2, padding=1)
        self.blocks = residual_stages(widths, (4, 4, 4, 4), widths[0], binarizer, lab_blocks, prelu=False,
                                      pad_value=pad_value)
        self.pool = nn.GlobalAvgPool()
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.stem_pool(self.stem_bn(self.stem_conv(x)))
        for block in self.blocks:
            x = block(x)
        return self.classifier(self.pool(x))
