"""Placeholder replaced by the inference-engine benchmark."""


def add_arguments(parser):
    pass


def run_model_bench(args):
    raise SystemExit("the model benchmark needs minilab.engine")
