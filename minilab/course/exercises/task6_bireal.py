"""Task 6 — a Bi-Real block, trained on a tiny synthetic set with *your* ops.

Bi-Real Net (Liu et al., 2018) wraps a real-valued shortcut around every binary convolution; LAB-BNN adds a
PReLU after the sum.  With the LAB binarizer of task 4 and +1-padding:

    out = PReLU( BN( BinaryConv3×3( LAB(x) ) ) + x )

BinaryConv3×3 (`nn.BinaryConv2d`) binarizes its input with LAB, pads the ±1 map with `pad_value` and convolves it
with ±α-scaled signs of its latent weights; BN is batch normalisation; the shortcut x is added *before* the PReLU.

Write `BiRealBlock.forward` and `train`: the classic loop of Adam on the cross-entropy,

    for every step:  clear the gradients (they accumulate) → loss = cross_entropy(model(images), labels)
                     → loss.backward() → optimizer.step() → remember loss.item()

The grader runs `train` with your tasks 3–5 swapped in for minilab's own ops (through `minilab.core.dispatch`:
every binary convolution, LAB and PReLU in the model is then yours) and expects the loss to go down.
"""
from minilab import F, nn
from minilab.optim import Adam


class BiRealBlock(nn.Module):
    def __init__(self, channels, binarizer="lab", pad_value=1):
        super().__init__()
        self.conv = nn.BinaryConv2d(channels, channels, 3, binarizer=binarizer, pad_value=pad_value)
        self.bn = nn.BatchNorm2d(channels)
        self.prelu = nn.PReLU(channels)

    def forward(self, x):
        # BEGIN SOLUTION task 6: Bi-Real block forward
        return self.prelu(self.bn(self.conv(x)) + x)
        # END SOLUTION


class TinyNet(nn.Module):
    """One Bi-Real block, global average pooling and a linear classifier."""

    def __init__(self, channels, classes, binarizer="lab", pad_value=1):
        super().__init__()
        self.block = BiRealBlock(channels, binarizer, pad_value)
        self.pool = nn.GlobalAvgPool()
        self.head = nn.Linear(channels, classes)

    def forward(self, x):
        return self.head(self.pool(self.block(x)))


def train(model, images, labels, steps, lr=0.01):
    """Train `model` for `steps` full-batch Adam steps on (images Tensor, labels int array); return the list of
    the `steps` losses (floats), one per step, each measured before that step's update."""
    # BEGIN SOLUTION task 6: training loop
    optimizer = Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
    # END SOLUTION
