"""`python -m minilab.bench contention`: training speed on a shared machine, in one sitting.

Real machines are shared: a browser, another student's experiment, other MPI ranks.  A parallel loop waits for
its slowest thread, so a thread whose core is taken slows every step.  This bench measures Bi-Real-18 training
steps (forward + backward + Adam, 64 px, batch 64, sign binarizer: what `bench scaling` times) in fresh processes:

    alone        1 thread, then N threads, a fixed count (`train --fixed-threads`)
    beside busy  the same, with a process spinning on one core beside it (started and stopped by the bench)
    together     two 1-thread trainings at once, then two N-thread trainings at once
    adapting     each of the three again as `python -m minilab.train --threads N` runs: N threads at most, fewer
                 while other programs take cores (`minilab.core.adaptive_threads`)
    mpi          (--mpi) `mpiexec -n 2 python -m minilab.train` on synthetic data without --threads and with
                 --threads 1: wall seconds of the whole command

and prints the ratios that say whether threads cope with lost cores and whether the defaults oversubscribe:

    busy:      N threads beside a busy process / 1 thread beside it          (≥ 1: the extra thread helps)
    together:  two N-thread runs at once / two 1-thread runs at once, summed  (≥ 1: no oversubscription loss)
    alone:     N threads alone / 1 thread alone                              (the quiet-machine speed-up)
    *_auto:    the same with the adapting runs in place of the fixed N threads
    mpi:       seconds without --threads / seconds with --threads 1         (≤ 1: the default does not hurt)

Each run builds its model, takes one untimed step, then waits for a common start signal, so runs that share the
machine are timed over the same moments; each reports the median of its timed steps.  `--quick` shrinks
everything (a narrow network, 32 px, few steps) to check the bench itself, not the machine."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from ..core.validate import strict_json

BUSY = "while True: pass"   # one core, spinning


def worker(spec):
    """Child process: build the model, one warm-up step, 'ready', wait for a line on stdin, then time the steps
    and print {"images_per_s": …}.  With threads "auto" the count follows the machine's load as a training
    does unless --fixed-threads (`core.adaptive_threads`): the warm-up then lasts until the governor has read the
    machine a few times, so the timed steps see its settled choice."""
    from ..core import config
    from ..core.adaptive_threads import INTERVAL, READINGS_TO_CHANGE, ThreadGovernor
    from ..core.machine import usable_cores
    from ..training.memory import keep_freed_memory
    from ..core.threads import set_threads

    from .kernels import training_step

    auto = spec["threads"] == "auto"
    set_threads(spec["ceiling"] if auto else spec["threads"])
    keep_freed_memory()
    batch = spec["batch_size"]
    step = training_step(spec["arch"], spec["image_size"], batch, spec["width"], "sign")
    step()
    governor = ThreadGovernor(spec["ceiling"], usable_cores()[0], set_threads) if auto else None
    print("ready", flush=True)
    sys.stdin.readline()
    if governor is not None:
        settle = time.monotonic() + (READINGS_TO_CHANGE + 1.5) * INTERVAL
        while time.monotonic() < settle:
            step()
            governor.after_step()
    times = []
    for _ in range(spec["steps"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        if governor is not None:
            governor.after_step()
    ext = config.kernels()
    print(json.dumps({"images_per_s": batch / float(np.median(times)), "threads": config.threads,
                      "kernels": ext.variant if ext is not None else None,
                      "own_gemm": ext.own_sgemm_in_use() if ext is not None else None}), flush=True)


def run_together(specs, busy=False):
    """Start one child per spec (and a spinning process when `busy`), let them all start timing at once, and
    return their results in order."""
    spinner = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    children = [subprocess.Popen([sys.executable, "-m", "minilab.benchmarks.contention", "--worker", json.dumps(spec)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for spec in specs]
    try:
        for child in children:
            line = child.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"a benchmark process stopped before its first step (exit {child.wait()})")
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            out, _ = child.communicate()
            if child.returncode != 0:
                raise RuntimeError(f"a benchmark process failed (exit {child.returncode})")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def mpi_train_seconds(args, threads):
    """Wall seconds of `mpiexec -n 2 python -m minilab.train` on synthetic data (with --threads when given)."""
    out = tempfile.mkdtemp(prefix="minilab-contention-")
    command = ["mpiexec", "-n", "2", sys.executable, "-m", "minilab.train", "--data", "synthetic",
               "--synthetic-size", str(4 * args.batch_size), "16", "--arch", args.arch, "--binarizer", "sign",
               "--image-size", str(args.image_size), "--width", str(args.width), "--batch-size",
               str(args.batch_size), "--epochs", "1", "--max-steps", str(args.steps), "--workers", "0",
               "--no-progress", "--cache-dir", os.path.join(out, "cache"), "--out", os.path.join(out, "run")]
    if threads is not None:
        command += ["--threads", str(threads)]
    try:
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"mpiexec training failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds


def ratios(result):
    """The bench's ratios from its measured rates (and seconds): see the module docstring."""
    rate = lambda runs: sum(r["images_per_s"] for r in runs)   # noqa: E731  (runs at once add up)
    out = {"alone": rate(result["alone_n"]) / rate(result["alone_1"]),
           "busy": rate(result["busy_n"]) / rate(result["busy_1"]),
           "together": rate(result["together_n"]) / rate(result["together_1"])}
    for key in ("alone", "busy", "together"):
        if f"{key}_auto" in result:
            out[f"{key}_auto"] = rate(result[f"{key}_auto"]) / rate(result[f"{key}_1"])
    if "mpi_default_s" in result:
        out["mpi"] = result["mpi_default_s"] / result["mpi_threads_1_s"]
    return out


def measure(args):
    from ..core.blas import describe_blas
    from ..core.machine import cpu_name, usable_cores

    spec = {"arch": args.arch, "image_size": args.image_size, "batch_size": args.batch_size, "width": args.width,
            "steps": args.steps}
    one, many = dict(spec, threads=1), dict(spec, threads=args.threads)
    auto = dict(spec, threads="auto", ceiling=args.threads)
    result = {"cpu": cpu_name(), "cores": usable_cores()[0], "threads": args.threads, "settings": spec}
    plan = [("alone_1", [one], False), ("alone_n", [many], False), ("busy_1", [one], True),
            ("busy_n", [many], True), ("together_1", [one, one], False), ("together_n", [many, many], False),
            ("alone_auto", [auto], False), ("busy_auto", [auto], True), ("together_auto", [auto, auto], False)]
    for name, specs, busy in plan:
        result[name] = run_together(specs, busy)
        if not args.json:
            rates = " + ".join(f"{r['images_per_s']:.1f}" for r in result[name])
            print(f"  {name:<11s} {rates} img/s", file=sys.stderr, flush=True)
    result["kernels"] = result["alone_1"][0]["kernels"]
    result["blas"] = describe_blas(avx512_cpu=result["kernels"] == "avx512",            # the float GEMMs' speed
                                   own_gemm=result["alone_1"][0].get("own_gemm"))
    if args.mpi:
        result["mpi_default_s"] = mpi_train_seconds(args, None)
        result["mpi_threads_1_s"] = mpi_train_seconds(args, 1)
    result["ratios"] = ratios(result)
    return result


def print_result(result):
    n = result["threads"]
    rate = lambda name: " + ".join(f"{r['images_per_s']:.1f}" for r in result[name])   # noqa: E731
    s = result["settings"]
    print(f"{result['cpu']}, {result['cores']} usable cores, kernels {result['kernels']}; {s['arch']} sign, "
          f"{s['image_size']} px, batch {s['batch_size']}, width {s['width']}, median of {s['steps']} steps")
    print(f"BLAS: {result['blas']}")
    print(f"{'':>24s} {'1 thread':>14s} {f'{n} threads':>14s} {'ratio':>7s} {f'up to {n}':>14s} {'ratio':>7s}")
    for label, key in (("alone", "alone"), ("beside a busy process", "busy"), ("two runs at once", "together")):
        auto = (f" {rate(key + '_auto'):>14s} {result['ratios'][key + '_auto']:7.2f}"
                f"  (threads {'+'.join(str(r['threads']) for r in result[key + '_auto'])})")
        print(f"{label:>24s} {rate(key + '_1'):>14s} {rate(key + '_n'):>14s} {result['ratios'][key]:7.2f}{auto}")
    if "mpi" in result["ratios"]:
        print(f"mpiexec -n 2 train: {result['mpi_default_s']:.1f} s without --threads, "
              f"{result['mpi_threads_1_s']:.1f} s with --threads 1, ratio {result['ratios']['mpi']:.2f}")


def run_contention(args):
    from ..core.machine import usable_cores

    if args.quick:
        args.width, args.image_size, args.batch_size, args.steps = 0.25, 32, 8, 2
    if args.threads is None:
        args.threads = max(2, usable_cores()[0])
    problems = [f"--{name} must be at least {low}, got {value}" for name, value, low in
                (("threads", args.threads, 1), ("steps", args.steps, 1), ("batch-size", args.batch_size, 2))
                if value < low]
    if args.mpi and shutil.which("mpiexec") is None:
        problems.append("--mpi needs mpiexec on the PATH (pip install -e \".[mpi]\")")
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    try:
        result = measure(args)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(strict_json(result, indent=1)) if args.json else print_result(result)
    return 0


def add_arguments(sub):
    from ..models import MODELS

    c = sub.add_parser("contention", help="training img/s with 1 and N threads alone, beside a busy process and "
                                          "two at once, with ratios", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--arch", default="birealnet18", choices=sorted(MODELS), help="(default birealnet18)")
    c.add_argument("--image-size", type=int, default=64, help="(default 64)")
    c.add_argument("--batch-size", type=int, default=64, help="(default 64)")
    c.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1.0)")
    c.add_argument("--threads", type=int, default=None, help="N (default: the usable cores, at least 2)")
    c.add_argument("--steps", type=int, default=5, help="timed steps per run (the median counts; default 5)")
    c.add_argument("--mpi", action="store_true", help="also time `mpiexec -n 2 python -m minilab.train` without "
                                                     "--threads against --threads 1")
    c.add_argument("--quick", action="store_true", help="a tiny network and few steps: checks the bench, not the "
                                                       "machine")
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]))
    else:
        print("run it as python -m minilab.bench contention (see --help)", file=sys.stderr)
        sys.exit(2)
