"""Task 6: the Bi-Real block's forward, and a few training steps with the student's ops swapped in."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from .. import refs
from ..swap import student_ops
from .common import check, expect_close


def synthetic_set(seed, n=16, channels=4, side=6):
    """Two classes told apart by the sign of a fixed pattern added to noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    pattern = rng.standard_normal((channels, side, side))
    images = rng.standard_normal((n, channels, side, side)) * 0.5 + np.where(labels, 1, -1)[:, None, None, None] \
        * pattern
    return refs.Tensor(images.astype(np.float32)), labels


def copy_block(block, reference):
    """Give minilab's ResidualBinaryBlock the student block's parameters (same attribute names)."""
    reference.conv.weight.data[...] = block.conv.weight.data
    for name in ("weight", "bias", "beta"):
        getattr(reference.conv.binarizer, name).data[...] = getattr(block.conv.binarizer, name).data
    reference.bn.weight.data[...] = block.bn.weight.data
    reference.bn.bias.data[...] = block.bn.bias.data
    reference.prelu.weight.data[...] = block.prelu.weight.data


@check("BiRealBlock(x) = PReLU(BN(BinaryConv3×3(x)) + x), as minilab's block computes it",
       "the shortcut x is added after the batch norm and before the PReLU: self.prelu(self.bn(self.conv(x)) + x)",
       most=10)
@given(seed=st.integers(0, 2**16), pad_value=st.sampled_from([0, 1]))
def block_forward(ws, seed, pad_value):
    refs.nn.init.seed(seed)
    block = ws.task6.BiRealBlock(3, "lab", pad_value)
    reference = refs.ResidualBinaryBlock(3, 3, 1, "lab", prelu=True, pad_value=pad_value)
    rng = np.random.default_rng(seed)
    block.prelu.weight.data[...] = rng.uniform(-0.5, 0.5, 3)   # a non-zero slope, so PReLU ≠ ReLU
    copy_block(block, reference)
    x = refs.Tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    got, want = block(x).data, reference(x).data
    expect_close("BiRealBlock(x)", got, want, magnitude=np.abs(want) + 1, terms=64)


@check("train() with your tasks 3–5 swapped in: 15 Adam steps on a tiny synthetic set, the loss goes down",
       "every step: clear the gradients (optimizer.zero_grad(): they accumulate), compute the loss, "
       "loss.backward(), then optimizer.step(); return one float per step.  If this fails while tasks 3–5 pass, "
       "look at the block and the loop", most=3)
@given(seed=st.integers(0, 2**16))
def training(ws, seed):
    images, labels = synthetic_set(seed)
    refs.nn.init.seed(seed)
    model = ws.task6.TinyNet(4, 2, "lab", 1)
    with student_ops(ws) as calls:
        before = dict(calls)
        losses = [float(v) for v in ws.task6.train(model, images, labels, steps=15, lr=0.02)]
        ran = {op: calls[op] - before.get(op, 0) for op in ("binary_conv", "lab", "prelu")}
    if len(losses) != 15:
        raise AssertionError(f"train(..., steps=15) returned {len(losses)} losses, expected 15")
    if not np.all(np.isfinite(losses)):
        raise AssertionError(f"the loss is not finite: {losses}")
    missing = [op for op, count in ran.items() if count == 0]
    if missing:
        raise AssertionError(f"your {', '.join(missing)} never ran: the model must use nn.BinaryConv2d with the "
                             "LAB binarizer and nn.PReLU")
    if not losses[-1] < losses[0] - 0.05:
        raise AssertionError("the loss did not go down: " + ", ".join(f"{v:.4f}" for v in losses))


CHECKS = [block_forward, training]
