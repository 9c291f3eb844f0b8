from .optimizers import OPTIMIZERS, SGD, Adam, AdamW, Optimizer
from .schedules import SCHEDULES, Constant, CosineWarmup, LinearDecay, make_schedule
