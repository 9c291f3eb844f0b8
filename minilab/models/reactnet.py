"""ReActNet-A (Liu et al., 2020): a MobileNetV1 body with binary convs, RSign and RPReLU, as in the fork's
Larq-zoo `literature/reactnet.py`.

    RSign  = LearnableBias → binarizer                   RPReLU = LearnableBias → PReLU(0.25) → LearnableBias
    stem:   Conv3×3/2 (32) → BN
    block (in → out, stride):
        x1 = RPReLU(BN(BinaryConv3×3/stride(RSign(x); pad +1)) + AvgPool2(x) if stride 2 else x)
        same width:  out = RPReLU(BN(BinaryConv1×1(RSign(x1))) + x1)
        doubling:    b = RSign(x1);  out = RPReLU(concat(BN(Conv1×1_a(b)) + x1, BN(Conv1×1_b(b)) + x1))
    13 blocks: 32→64, 64→128/2, 128, 128→256/2, 256, 256→512/2, 512×5, 512→1024/2, 1024
    head:   global average pool → Dense(num_classes)
lab_blocks groups: [b1], [b2–b5], [b6–b11], [b12–b13]."""
from .. import nn
from .. import ops as F
from .common import check_binarizer, parse_lab_blocks, scaled, stage_binarizer

BLOCKS = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
          (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 1024, 2),
          (1024, 1024, 1)]
STAGE_OF_BLOCK = (0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3)


class RSign(nn.Module):
    def __init__(self, channels, binarizer):
        super().__init__()
        self.shift = nn.LearnableBias(channels)
        self.binarize = nn.make_binarizer(binarizer, channels)

    def forward(self, x):
        return self.binarize(self.shift(x))


class RPReLU(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.shift_in = nn.LearnableBias(channels)
        self.prelu = nn.PReLU(channels, init_value=0.25)
        self.shift_out = nn.LearnableBias(channels)

    def forward(self, x):
        return self.shift_out(self.prelu(self.shift_in(x)))


def _bconv(cin, cout, k, stride=1):
    return nn.BinaryConv2d(cin, cout, k, stride=stride, binarizer=None, pad_value=1)


class ReActBlock(nn.Module):
    def __init__(self, cin, cout, stride, binarizer):
        super().__init__()
        self.stride, self.doubling = stride, cout != cin
        self.sign1 = RSign(cin, binarizer)
        self.conv3 = _bconv(cin, cin, 3, stride)
        self.bn3 = nn.BatchNorm2d(cin, momentum=0.8)
        self.act1 = RPReLU(cin)
        self.sign2 = RSign(cin, binarizer)
        if self.doubling:
            self.conv1_a, self.conv1_b = _bconv(cin, cin, 1), _bconv(cin, cin, 1)
            self.bn1_a, self.bn1_b = nn.BatchNorm2d(cin, momentum=0.8), nn.BatchNorm2d(cin, momentum=0.8)
        else:
            self.conv1 = _bconv(cin, cout, 1)
            self.bn1 = nn.BatchNorm2d(cout, momentum=0.8)
        self.act2 = RPReLU(cout)

    def forward(self, x):
        shortcut = F.avg_pool2d(x, 2, 2) if self.stride == 2 else x
        x1 = self.act1(self.bn3(self.conv3(self.sign1(x))) + shortcut)
        b = self.sign2(x1)
        if self.doubling:
            out = F.concat([self.bn1_a(self.conv1_a(b)) + x1, self.bn1_b(self.conv1_b(b)) + x1], axis=1)
        else:
            out = self.bn1(self.conv1(b)) + x1
        return self.act2(out)


class ReActNetA(nn.Module):
    def __init__(self, num_classes=1000, width=1.0, binarizer="sign", lab_blocks="1111", in_channels=3):
        super().__init__()
        check_binarizer(binarizer)
        lab_blocks = parse_lab_blocks(lab_blocks)
        self.stem_conv = nn.Conv2d(in_channels, scaled(32, width), 3, stride=2)
        self.stem_bn = nn.BatchNorm2d(scaled(32, width), momentum=0.8)
        self.blocks = [ReActBlock(scaled(cin, width), scaled(cout, width), s,
                                  stage_binarizer(binarizer, lab_blocks, STAGE_OF_BLOCK[i]))
                       for i, (cin, cout, s) in enumerate(BLOCKS)]
        self.pool = nn.GlobalAvgPool()
        self.classifier = nn.Linear(scaled(1024, width), num_classes)

    def forward(self, x):
        x = self.stem_bn(self.stem_conv(x))
        for block in self.blocks:
            x = block(x)
        return self.classifier(self.pool(x))
