"""Optimizers.  Each `step()` updates every parameter that has a gradient; the update ends with the latent-weight
clip (Parameter.clip, Larq's WeightClip) — the one place where binary-conv constraints are enforced.

    SGD:   v ← μ·v + (g + λ·w);   w ← w − lr·v     (Nesterov: w ← w − lr·(g + λw + μ·v))
    Adam:  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  w ← w − lr·m̂/(√v̂ + ε), m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ)
           (Keras' Adam default ε is 1e-7; L2 weight decay adds λ·w to g)
    AdamW: Adam plus decoupled decay w ← w − lr·λ·w.
"""
import numpy as np

from ..core import dispatch


class Optimizer:
    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.lr = lr
        self.state = [dict() for _ in self.params]
        self.steps = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.steps += 1
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            self.update(p, p.grad.astype(p.data.dtype, copy=False), state)

    def update(self, p, g, state):  # pragma: no cover - abstract
        """Update p.data in place from its gradient g, then clip it to p.clip (when the parameter has one)."""
        raise NotImplementedError

    # Optimizer state as flat NumPy arrays, so checkpoints are plain .npz files.
    def state_dict(self):
        out = {"steps": np.array(self.steps), "lr": np.array(self.lr)}
        for i, state in enumerate(self.state):
            for key, value in state.items():
                out[f"{i}.{key}"] = value
        return out

    def load_state_dict(self, state):
        self.steps = int(state["steps"])
        self.lr = float(state["lr"])
        self.state = [dict() for _ in self.params]
        for key, value in state.items():
            if key in ("steps", "lr"):
                continue
            index, name = key.split(".", 1)
            index = int(index)
            if index >= len(self.params):
                raise ValueError(f"optimizer state has an entry for parameter {index}, the model has "
                                 f"{len(self.params)} parameters")
            self.state[index][name] = np.array(value)


class SGD(Optimizer):
    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay

    def update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            v = state.setdefault("velocity", np.zeros_like(p.data))
            v *= self.momentum
            v += g
            g = g + self.momentum * v if self.nesterov else v
        p.data -= self.lr * g
        clip_weights(p.data, getattr(p, "clip", None))


class Adam(Optimizer):
    def __init__(self, params, lr=2.5e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.0, decoupled=False):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay, self.decoupled = betas, eps, weight_decay, decoupled

    def update(self, p, g, state):
        b1, b2 = self.betas
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * p.data
        if "m" not in state:  # (setdefault would build two zero arrays on every step)
            state["m"], state["v"] = np.zeros_like(p.data), np.zeros_like(p.data)
        m, v = state["m"], state["v"]
        if self.weight_decay and self.decoupled:
            p.data -= self.lr * self.weight_decay * p.data  # independent of the moments, so it may come first
        dispatch.call(adam_update, p.data, g, m, v, lr=self.lr, b1=b1, b2=b2, eps=self.eps, step=self.steps,
                      clip=getattr(p, "clip", None))


def clip_weights(w, clip):
    """w ← clip(w, −clip, clip) in place (nothing when clip is None)."""
    if clip is not None:
        np.clip(w, -clip, clip, out=w)


def adam_update(w, g, m, v, *, lr, b1, b2, eps, step, clip=None):
    """One Adam step of one parameter, in place (w, m, v), then the latent-weight clip.  A plain function, so
    that a compiled twin (`minilab.fast.adam`) can replace it for float32 arrays."""
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    m_hat = m / (1 - b1 ** step)
    v_hat = v / (1 - b2 ** step)
    w -= (lr * m_hat / (np.sqrt(v_hat) + eps)).astype(w.dtype)
    clip_weights(w, clip)


class AdamW(Adam):
    def __init__(self, params, lr=2.5e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay, decoupled=True)


OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "sgd": SGD}
