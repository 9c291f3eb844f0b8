"""Where LAB goes: the paper's Table 9 (LAB on or off per residual stage) redone on Imagenette.

A *mask* such as ``0111`` switches LAB on (1) or off (0, sign instead) for the four residual stages of LAB-BNN,
from the first (high resolution, few channels) to the last (7×7 at 224 px, many channels).  Each trained run
leaves a ``metrics.jsonl``; its accuracy is the last epoch's validation top-1.  Latency and the packed model's size
come from ``python -m minilab.bench model`` on random weights of the same architecture (neither depends on the
weights' values), all measured in one sitting and kept in ``latency.json`` beside the metrics.

``python -m minilab.plot --placement DIR`` reads such a folder, prints the table and draws the figure."""
import json
import os
import re

from . import plotting

# The paper's Table 9: Bi-Real-style LAB-BNN on ImageNet, 30 epochs; latency measured with Larq Compute Engine
# on an Nvidia Jetson Xavier NX; size of the converted model in MB.  mask: (top-1 %, latency ms, size MB).
PAPER = {
    "0000": (53.2, 54.6, 4.20), "0001": (55.9, 41.4, 4.54), "0010": (56.7, 58.8, 4.27), "0011": (57.8, 60.6, 4.62),
    "0100": (55.7, 47.6, 4.23), "0101": (57.9, 64.9, 4.58), "0110": (58.0, 63.9, 4.31), "0111": (58.7, 68.0, 4.66),
    "1000": (54.9, 59.9, 4.22), "1001": (56.7, 71.1, 4.57), "1010": (57.8, 72.9, 4.29), "1011": (58.4, 75.3, 4.64),
    "1100": (56.4, 75.0, 4.26), "1101": (58.1, 77.1, 4.61), "1110": (58.4, 79.1, 4.33), "1111": (59.1, 83.7, 4.68),
}
RUN_NAME = re.compile(r"^lab-([01]{4})-s(\d+)(?:\.jsonl)?$")
LATENCY_FILE = "latency.json"


def run_key(name):
    """(mask, seed) of a run named ``lab-MASK-sSEED`` (a run directory, or its kept ``.jsonl``), else None."""
    match = RUN_NAME.match(name)
    return (match.group(1), int(match.group(2))) if match else None


def read_latency(folder):
    """The one-sitting latency record (``latency.json``), or None when it has not been measured yet."""
    path = os.path.join(folder, LATENCY_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        record = json.load(f)
    for key in ("cpu", "date", "command", "results"):
        if key not in record:
            raise ValueError(f"{path}: no '{key}' entry (expected a file written by tools/table9_latency.py)")
    return record


def latency_of(record, mask, image_size, threads):
    """(median ms, size MB) of one measured configuration, or (None, None)."""
    for r in (record or {}).get("results", []):
        if (r["mask"], r["image_size"], r["threads"]) == (mask, image_size, threads):
            return r["median_ms"], r["size_mb"]
    return None, None


def summarize(runs, record=None, epochs=30):
    """runs: {mask: {seed: metrics rows}}.  One row per mask, the fewest LAB stages first: accuracy per seed at the
    last epoch, the mean and top-5 over the seeds that finished `epochs` (over all while none has), the seeds still
    training with their epoch, the latencies and the size."""
    rows = []
    for mask in sorted(runs, key=lambda m: (m.count("1"), m)):
        last = {seed: seed_rows[-1] for seed, seed_rows in sorted(runs[mask].items())}
        running = {seed: r["epoch"] for seed, r in last.items() if r["epoch"] < epochs}
        counted = {seed: r for seed, r in last.items() if seed not in running} or last   # a seed still training
        top1 = {seed: 100 * r["val_top1"] for seed, r in last.items()}                     # counts once it is done
        row = {"mask": mask, "top1": top1, "running": running,
               "top1_mean": sum(top1[seed] for seed in counted) / len(counted),
               "top5_mean": sum(100 * r["val_top5"] for r in counted.values()) / len(counted),
               "epochs": min(r["epoch"] for r in counted.values()),
               "finished": len(running) < len(last),       # at least one seed done: the mean is over those
               "paper": PAPER.get(mask)}
        for size in (224, 64):
            for threads in (1, 2):
                row[f"ms_{size}_{threads}"], row["size_mb"] = latency_of(record, mask, size, threads)
        rows.append(row)
    return rows


def pareto_front(points):
    """Indices of the points (latency, accuracy) that no other point beats on both: as fast or faster *and* as
    accurate or more, strictly better on one."""
    front = []
    for i, (t, a) in enumerate(points):
        if not any((t2 <= t and a2 >= a) and (t2 < t or a2 > a) for j, (t2, a2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def markdown_table(rows, record=None):
    """The docs page's table: minilab on Imagenette beside the paper on ImageNet."""
    def num(value, fmt="{:.2f}"):
        return "–" if value is None else fmt.format(value)

    head = ("| LAB per stage | top-1 % (mean) | top-1 % per seed | top-5 % | epochs | size MB | 224 px, 1 thread ms "
            "| 224 px, 2 threads ms | 64 px, 1 thread ms | 64 px, 2 threads ms | paper: ImageNet top-1 % | paper: "
            "latency ms | paper: size MB |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        seeds = " / ".join(num(v) + (f" (epoch {r['running'][seed]}, running)" if seed in r["running"] and r["finished"]
                                     else "") for seed, v in r["top1"].items())
        paper = r["paper"] or (None, None, None)
        cells = [f"`{r['mask']}`", num(r["top1_mean"]), seeds, num(r["top5_mean"]),
                 f"{r['epochs']}" + ("" if r["finished"] else " (running)"), num(r["size_mb"], "{:.3f}"),
                 num(r["ms_224_1"]), num(r["ms_224_2"]), num(r["ms_64_1"]), num(r["ms_64_2"]),
                 num(paper[0], "{:.1f}"), num(paper[1], "{:.1f}"), num(paper[2], "{:.2f}")]
        lines.append("| " + " | ".join(cells) + " |")
    if record:
        lines += ["", f"Latency and size: {record['cpu']}, {record['date']}, `{record['command']}`."]
    return "\n".join(lines)


def spread(row):
    """(lowest, highest) top-1 of a mask's finished seeds (all its seeds while none has finished)."""
    done = [v for seed, v in row["top1"].items() if seed not in row["running"]] or list(row["top1"].values())
    return min(done), max(done)


def placement_figure(rows, path, record=None, latency_key="ms_224_1"):
    """Two panels: minilab's Imagenette top-1 against its packed engine's latency (one point per mask, the
    seeds' mean with a bar spanning them), and the paper's ImageNet top-1 against its Jetson latency for all
    sixteen masks (those trained here in colour).  The Pareto front (the masks no other mask beats on both axes)
    is joined by a dashed line in each panel."""
    measured = [r for r in rows if r[latency_key] is not None]

    def panel(ax, points, labels, spans, title, xlabel, ylabel, colours):
        colours = colours if isinstance(colours, list) else [colours] * len(points)
        for (t, a), label, span, colour in zip(points, labels, spans, colours):
            ax.plot(t, a, "o", color=colour)
            if span and span[1] > span[0]:
                ax.vlines(t, span[0], span[1], color=colour, lw=1.2)
            ax.annotate(label, (t, a), textcoords="offset points", xytext=(5, 4), fontsize=8)
        front = pareto_front(points)
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color=plotting.GREY,
                lw=1.0, label="Pareto front")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.legend(loc="lower right")

    def fill(fig):
        ours, paper = fig.subplots(1, 2)
        if measured:
            labels = [r["mask"] + ("" if r["finished"] else f" (epoch {r['epochs']}, running)") for r in measured]
            panel(ours, [(r[latency_key], r["top1_mean"]) for r in measured], labels,
                  [spread(r) for r in measured],
                  "minilab, Imagenette (64 px training)", "packed engine latency at 224 px, 1 thread (ms)",
                  "validation top-1 (%)", plotting.COLOURS[0])
        else:
            ours.text(0.5, 0.5, "latency not measured yet\n(tools/table9_latency.py)", ha="center", va="center",
                      transform=ours.transAxes)
            ours.set(title="minilab, Imagenette (64 px training)", xticks=[], yticks=[])
        masks = sorted(PAPER, key=lambda m: PAPER[m][1])       # all sixteen; the ones trained here in colour
        trained = {r["mask"] for r in rows}
        panel(paper, [(PAPER[m][1], PAPER[m][0]) for m in masks], masks, [None] * len(masks),
              "paper, ImageNet (30 epochs)", "Jetson Xavier NX latency (ms)", "validation top-1 (%)",
              [plotting.COLOURS[1] if m in trained else plotting.GREY for m in masks])

    where = f"minilab's latency on {record['cpu']}" if record else "latency not measured yet"
    return plotting.draw(path, fill, "wide", f"Where LAB goes: accuracy against latency per mask ({where})")
