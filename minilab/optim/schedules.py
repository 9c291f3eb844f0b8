"""Learning-rate schedules: functions of the step number t = 0 … total_steps − 1.

    constant:  lr(t) = lr0
    linear:    lr(t) = lr0 + (floor − lr0)·t/T        (the paper: 2.5e-3 → 1e-6 over the run's real T steps)
    cosine:    linear warm-up 0 → lr0 over W steps, then lr0·(1 + cos(π·(t − W)/(T − W)))/2   (QuickNet)
"""
import math


class Schedule:
    def __init__(self, lr, total_steps):
        if total_steps < 1:
            raise ValueError(f"a schedule needs at least one step, got total_steps={total_steps}")
        self.lr0, self.total_steps = lr, total_steps

    def __call__(self, step):  # pragma: no cover - abstract
        raise NotImplementedError


class Constant(Schedule):
    def __call__(self, step):
        return self.lr0


class LinearDecay(Schedule):
    def __init__(self, lr, total_steps, floor=1e-6):
        super().__init__(lr, total_steps)
        self.floor = floor

    def __call__(self, step):
        frac = min(step, self.total_steps) / self.total_steps
        return self.lr0 + (self.floor - self.lr0) * frac


class CosineWarmup(Schedule):
    def __init__(self, lr, total_steps, warmup_steps=0):
        super().__init__(lr, total_steps)
        self.warmup_steps = min(warmup_steps, total_steps - 1)

    def __call__(self, step):
        if step < self.warmup_steps:
            return self.lr0 * (step + 1) / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.lr0 * 0.5 * (1 + math.cos(math.pi * progress))


SCHEDULES = {"constant": Constant, "linear": LinearDecay, "cosine": CosineWarmup}


def make_schedule(name, lr, total_steps, warmup_steps=0, floor=1e-6):
    if name == "constant":
        return Constant(lr, total_steps)
    if name == "linear":
        return LinearDecay(lr, total_steps, floor)
    if name == "cosine":
        return CosineWarmup(lr, total_steps, warmup_steps)
    raise ValueError(f"unknown schedule {name!r}; choose from {sorted(SCHEDULES)}")
