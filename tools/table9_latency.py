"""Time the packed LAB-BNN of every Table 9 mask in one sitting: `python -m minilab.bench model` at 224 and 64 px,
1 and 2 threads, width 0.5 and 10 classes (the Imagenette models), random weights (latency and size do not
depend on the weights' values).  Each configuration runs ROUNDS times, the rounds in alternating order, so a
slow minute of a shared machine shows as a spread between rounds, not as a difference between masks; the best
round's median is kept (on a shared virtual machine a round that ran while the host took a core is up to twice
as slow; every round's median is kept beside it).  Writes docs/table9/latency.json (or the folder given), naming the CPU, the date
and this command.  Run it on quiet cores.

Usage: python tools/table9_latency.py [FOLDER] [--rounds 3] [--runs 100]"""
import argparse
import datetime
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASKS = ["0000", "0001", "0011", "0111", "1111", "1000", "1110"]
SIZES, THREADS = (224, 64), (1, 2)


def bench(mask, size, threads, runs):
    command = [sys.executable, "-m", "minilab.bench", "model", "--arch", "labbnn", "--width", "0.5",
               "--num-classes", "10", "--lab-blocks", mask, "--image-size", str(size), "--threads", str(threads),
               "--runs", str(runs), "--float-runs", "1", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command[1:])} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    return result["packed"]["median_ms"], result["size_mb"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", nargs="?", default=os.path.join(ROOT, "docs", "table9"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=100, help="timed forwards per configuration and round")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from minilab.core.machine import cpu_name

    configs = [(m, s, t) for m in MASKS for s in SIZES for t in THREADS]
    times = {c: [] for c in configs}
    sizes = {}
    for round_ in range(args.rounds):
        for config in (configs if round_ % 2 == 0 else configs[::-1]):
            ms, sizes[config] = bench(*config, args.runs)
            times[config].append(ms)
            print(f"round {round_ + 1}: {config[0]} {config[1]} px {config[2]} thread(s): {ms:.3f} ms", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    record = {"cpu": cpu_name(), "date": datetime.date.today().isoformat(), "commit": commit,
              "command": f"python tools/table9_latency.py --rounds {args.rounds} --runs {args.runs}",
              "results": [{"mask": m, "image_size": s, "threads": t, "median_ms": min(times[(m, s, t)]),
                           "round_medians_ms": times[(m, s, t)], "size_mb": sizes[(m, s, t)]}
                          for m, s, t in configs]}
    os.makedirs(args.folder, exist_ok=True)
    path = os.path.join(args.folder, "latency.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
