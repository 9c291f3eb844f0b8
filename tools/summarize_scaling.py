"""Markdown tables from the raw outputs of tools/measure_scaling.sh: `python tools/summarize_scaling.py OUTDIR`.

Reads OUTDIR/runs.tsv (one line per run: its configuration, round, exit status) and each run's NAME.json, and
prints the engine's latency and throughput against the thread count and the training step against the split of
the cores into ranks × threads.  A configuration run in several rounds shows the spread of its per-round values
as "a–b"; every speed-up is a ratio of two runs of the same round (1 thread, or 1 process × 1 thread, as the
reference), so a slow minute moves both sides of it.  Standard library only."""
import csv
import json
import os
import statistics
import sys


def load_json(path):
    """The record a run printed: its last JSON object that starts a line (`bench model --json` prints one
    indented object; `bench scaling` one line per world under mpiexec, {"rows": [...]} as a plain process), so
    that anything printed before it does not matter."""
    with open(path) as f:
        text = f.read()
    starts = [i for i in range(len(text)) if text[i] == "{" and (i == 0 or text[i - 1] == "\n")]
    if not starts:
        return None
    record, _ = json.JSONDecoder().raw_decode(text[starts[-1]:])
    return record["rows"][0] if "rows" in record else record


def read_runs(out):
    """(ok, failed): ok maps (kind, binarizer, batch, ranks, threads) → {round: record}; failed lists the rows of
    runs that did not finish (or printed nothing readable)."""
    ok, failed = {}, []
    with open(os.path.join(out, "runs.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            path = os.path.join(out, row["name"] + ".json")
            record = None
            if row["rc"] == "0" and os.path.exists(path):
                try:
                    record = load_json(path)
                except (json.JSONDecodeError, KeyError, IndexError):
                    record = None
            if record is None:
                failed.append(row)
                continue
            key = (row["kind"], row["binarizer"], int(row["batch"]), int(row["ranks"]), int(row["threads"]))
            ok.setdefault(key, {})[int(row["round"])] = record
    return ok, failed


def spread(values, fmt="{:.2f}"):
    """One value as itself, several as 'min–max'; '–' when there are none."""
    if not values:
        return "–"
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"


def ratios(numerators, denominators):
    """Per-round ratios numerator / denominator, over the rounds both have."""
    return [numerators[r] / denominators[r] for r in sorted(set(numerators) & set(denominators))]


def engine_latency(ok, threads_list):
    ms = {b: {t: {r: rec["packed"]["median_ms"] for r, rec in ok.get(("engine", b, 1, 1, t), {}).items()}
              for t in threads_list} for b in ("lab", "sign")}
    lines = ["| threads | LAB ms | sign ms | LAB / sign | LAB speed-up | sign speed-up | LAB efficiency |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for t in threads_list:
        lab, sign = ms["lab"][t], ms["sign"][t]
        up_lab, up_sign = ratios(ms["lab"].get(1, {}), lab), ratios(ms["sign"].get(1, {}), sign)
        lines.append(f"| {t} | {spread(list(lab.values()))} | {spread(list(sign.values()))} | "
                     f"{spread(ratios(lab, sign))} | {spread(up_lab, '{:.2f}×')} | {spread(up_sign, '{:.2f}×')} | "
                     f"{spread([u / t for u in up_lab], '{:.0%}')} |")
    return lines


def engine_throughput(ok, threads_list):
    rate = {b: {t: {r: 8e3 / rec["packed"]["median_ms"] for r, rec in ok.get(("engine", b, 8, 1, t), {}).items()}
                for t in threads_list} for b in ("lab", "sign")}
    lines = ["| threads | LAB images/s | sign images/s | LAB speed-up | sign speed-up |", "|---:|---:|---:|---:|---:|"]
    for t in threads_list:
        lab, sign = rate["lab"][t], rate["sign"][t]
        lines.append(f"| {t} | {spread(list(lab.values()), '{:.0f}')} | {spread(list(sign.values()), '{:.0f}')} | "
                     f"{spread(ratios(lab, rate['lab'].get(1, {})), '{:.2f}×')} | "
                     f"{spread(ratios(sign, rate['sign'].get(1, {})), '{:.2f}×')} |")
    return lines


def engine_breakdown(ok, threads_list):
    """LAB, batch 1: each operator's ms (median over rounds) at every thread count."""
    runs = {t: list(ok.get(("engine", "lab", 1, 1, t), {}).values()) for t in threads_list}
    threads_list = [t for t in threads_list if runs[t]]
    if not threads_list:
        return []
    names = [n for n in runs[threads_list[0]][0]["breakdown_ms"]
             if any(rec["breakdown_ms"].get(n, 0.0) > 0 for t in threads_list for rec in runs[t])]
    lines = ["| operator | " + " | ".join(f"{t} thr" for t in threads_list) + " |",
             "|---|" + "---:|" * len(threads_list)]
    for name in names + ["total (profiled)"]:
        cells = []
        for t in threads_list:
            values = [rec["profiled_total_ms"] if name.startswith("total") else rec["breakdown_ms"].get(name, 0.0)
                      for rec in runs[t]]
            cells.append(f"{statistics.median(values):.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def training(ok):
    """The training table: the plain 1 × 1 process first, then the mpiexec runs by rank count."""
    keys = sorted((k for k in ok if k[0] == "train"), key=lambda k: (k[3:] != (1, 1), k[3]))
    plain = {r: rec["images_per_s"] for k in keys if k[3:] == (1, 1) for r, rec in ok[k].items()}
    lines = ["| ranks × threads | img/s | step ms | compute ms | gradient wait ms | Adam ms | blocking allreduce ms "
             "| hidden | speed-up | efficiency |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in keys:
        ranks, threads = key[3:]
        recs = list(ok[key].values())

        def med(field, scale=1e3, fmt="{:.1f}"):
            return fmt.format(scale * statistics.median(rec[field] for rec in recs)) if ranks > 1 or field not in \
                ("wait_s", "allreduce_s", "hidden") else "–"

        rate = {r: rec["images_per_s"] for r, rec in ok[key].items()}
        up = ratios(rate, plain)
        label = "1 × 1 (plain process)" if (ranks, threads) == (1, 1) else f"{ranks} × {threads}"
        lines.append(f"| {label} | {spread(list(rate.values()), '{:.0f}')} | {med('step_s')} | {med('compute_s')} | "
                     f"{med('wait_s')} | {med('update_s')} | {med('allreduce_s')} | {med('hidden', 100, '{:.0f} %')} "
                     f"| {spread(up, '{:.2f}×')} | {spread([u / (ranks * threads) for u in up], '{:.0%}')} |")
    return lines, keys[0][2] if keys else None


def main(out):
    ok, failed = read_runs(out)

    def read(name):
        path = os.path.join(out, name)
        return open(path).read().strip() if os.path.exists(path) else ""

    threads_list = sorted({k[4] for k in ok if k[0] == "engine"})
    rounds = max([r for recs in ok.values() for r in recs] or [0])
    print(f"# Scaling on {read('cpu.txt') or 'an unnamed CPU'}\n")
    setting = read("setting.txt").splitlines()
    if setting:
        print("\n".join(f"- {line}" for line in setting) + "\n")
    print(f"{rounds} round(s) per configuration, in alternating order; a–b is the spread over the rounds, and "
          "every speed-up is a ratio of two runs of the same round.\n")
    if threads_list:
        runs = max(rec["packed"]["runs"] for k, recs in ok.items() if k[0] == "engine" for rec in recs.values())
        print("## Packed inference engine: LAB-BNN, 224 px, random weights\n")
        print(f"`python -m minilab.bench model --arch labbnn --image-size 224 --binarizer lab|sign --threads T "
              f"--runs {runs} --float-runs 1 --json` (batch 8: `--batch-size 8`, half the runs); median ms of the "
              "timed forwards.\n")
        print("### Latency, batch 1\n")
        print("\n".join(engine_latency(ok, threads_list)) + "\n")
        print("### Throughput, batch 8\n")
        b8 = sorted({k[4] for k in ok if k[0] == "engine" and k[2] == 8})
        print("\n".join(engine_throughput(ok, b8)) + "\n")
        print("### Per operator, LAB, batch 1 (ms, profiled runs)\n")
        print("\n".join(engine_breakdown(ok, threads_list)) + "\n")
    if any(k[0] == "train" for k in ok):
        lines, batch = training(ok)
        rec = next(iter(next(r for k, r in ok.items() if k[0] == "train").values()))
        print(f"## Training: Bi-RealNet-18, 64 px, global batch {batch}, forward + backward + Adam\n")
        print(f"`mpiexec -n R python -m minilab.bench scaling --arch birealnet18 --image-size 64 --batch-size {batch} "
              f"--threads T --json` (and the plain process without mpiexec); {rec['parameters'] / 1e6:.1f} M "
              f"parameters, {rec['gradient_bytes'] / 1e6:.1f} MB of float32 gradients. Timings are medians of the "
              "timed steps averaged over the ranks; speed-up = img/s / img/s of the plain 1 × 1 run of the same "
              "round; efficiency = speed-up / cores.\n")
        print("\n".join(lines) + "\n")
    problems = [line for line in read("problems.txt").splitlines() if line]
    if failed or problems:
        print("## What did not run\n")
        for line in problems:
            print(f"- {line}")
        for row in failed:
            status = {"124": "timed out", "137": "killed after the time-out", "skipped": "skipped (time budget)"}
            after = "" if row["rc"] == "skipped" else f" after {row['seconds']} s"
            print(f"- {row['name']}: {status.get(row['rc'], 'exit status ' + row['rc'])}{after}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "scaling-out"))
