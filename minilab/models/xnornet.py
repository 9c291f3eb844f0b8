"""XNOR-Net (Rastegari et al., 2016) on AlexNet, as in Larq-zoo `literature/xnornet.py`.

    Conv11×11/4 (96) → BN → ReLU → MaxPool3/2 → BN
    BinaryConv5×5 (256) → MaxPool3/2 → BN
    BinaryConv3×3 (384) → BN → BinaryConv3×3 (384) → BN
    BinaryConv3×3 (256) → MaxPool3/2 → BN
    BinaryConv k×k valid (4096) → BN        (k = 6 at 224 px: the map's size, so the output is 1×1)
    BinaryConv1×1 (4096) → BN → ReLU → Dense(num_classes, no bias)

Binary weights use xnor_weight_scale (α = mean|clip(w)| per filter, gradient through α).  BN without γ
(Keras scale=False).  The released code's L2(5e-7) kernel regulariser is the trainer's `--weight-decay`.
lab_blocks groups: [conv2], [conv3, conv4], [conv5], [fc6, fc7]."""
from .. import nn
from ..ops.conv import output_size
from .common import check_binarizer, parse_lab_blocks, scaled, stage_binarizer

STAGE_OF_LAYER = (0, 1, 1, 2, 3, 3)


class XNORNet(nn.Module):
    def __init__(self, num_classes=1000, width=1.0, binarizer="sign", lab_blocks="1111", image_size=224,
                 in_channels=3):
        super().__init__()
        check_binarizer(binarizer)
        lab_blocks = parse_lab_blocks(lab_blocks)
        c = [scaled(v, width) for v in (96, 256, 384, 384, 256, 4096, 4096)]

        def bconv(i, cin, cout, k, padding=None):
            return nn.BinaryConv2d(cin, cout, k, padding=padding, weight_quantizer="xnor",
                                   binarizer=stage_binarizer(binarizer, lab_blocks, STAGE_OF_LAYER[i]))

        size = output_size(image_size, 11, 4, 5)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c[0], 11, stride=4), nn.BatchNorm2d(c[0], momentum=0.9, eps=1e-5, scale=False),
            nn.ReLU(), nn.MaxPool2d(3, 2), nn.BatchNorm2d(c[0], eps=1e-4, scale=False),
            bconv(0, c[0], c[1], 5), nn.MaxPool2d(3, 2), nn.BatchNorm2d(c[1], eps=1e-4, scale=False),
            bconv(1, c[1], c[2], 3), nn.BatchNorm2d(c[2], eps=1e-4, scale=False),
            bconv(2, c[2], c[3], 3), nn.BatchNorm2d(c[3], eps=1e-4, scale=False),
            bconv(3, c[3], c[4], 3), nn.MaxPool2d(3, 2), nn.BatchNorm2d(c[4], eps=1e-4, scale=False))
        for _ in range(3):
            size = output_size(size, 3, 2, 0)
        if size < 1:
            raise ValueError(f"XNOR-Net: a {image_size} px input leaves no feature map for its head; it needs a "
                             "larger input")
        self.head = nn.Sequential(
            bconv(4, c[4], c[5], size, padding=0), nn.BatchNorm2d(c[5], eps=1e-4, scale=False),
            bconv(5, c[5], c[6], 1), nn.BatchNorm2d(c[6], eps=1e-3, scale=False), nn.ReLU(), nn.Flatten(),
            nn.Linear(c[6], num_classes, bias=False))

    def forward(self, x):
        return self.head(self.features(x))
