"""LAB-BNN (Falkena et al., WACV 2023, Table 8 row D): Bi-RealNet-18 with PReLU after every residual add,
the QuickNet stem, and LAB as the activation binarizer of all 16 binary convs.

    stem:    Conv3×3/2 (16) → BN → ReLU → DWConv3×3/2 → BN → Conv1×1 (64) → BN            224 → 56 px
    stages:  4 × 4 ResidualBinaryBlock(LAB → BinaryConv3×3 → BN, + shortcut, PReLU)  widths 64, 128, 256, 512
    head:    global average pool → Dense(num_classes)
"""
from .. import nn
from .common import QuickNetStem, check_binarizer, parse_lab_blocks, residual_stages, scaled


# The constructor opens as BiRealNet18's does (birealnet.py): LAB-BNN is that network with QuickNet's stem and
# PReLU, and each model file is meant to be read on its own.
class LabBNN(nn.Module):
    def __init__(self, num_classes=1000, width=1.0, binarizer="lab", lab_blocks="1111", pad_value=0, in_channels=3):
        super().__init__()
        check_binarizer(binarizer)
        lab_blocks = parse_lab_blocks(lab_blocks)
        widths = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.stem = QuickNetStem(widths[0], in_channels)
        self.blocks = residual_stages(widths, (4, 4, 4, 4), widths[0], binarizer, lab_blocks, prelu=True,
                                      pad_value=pad_value)
        self.pool = nn.GlobalAvgPool()
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.classifier(self.pool(x))
