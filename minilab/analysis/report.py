"""The report behind `python -m minilab.analyze`: images from a folder, the binary layers to look at, the
analyses per layer (η, SSIM / ENDSIM, the +1 fraction, feature maps) and the Markdown report with its figures."""
import os

import numpy as np

from ..core.validate import strict_json
from ..data.folder import DataError, find_images_under
from . import capture, layer_dissimilarity, layer_uniqueness, plus_one_fraction
from .figures import feature_figure
from .plotting import COLOURS, bar_chart, draw, outside_legend
from .similarity import ENCODINGS


def load_images(folder, size, limit):
    """Up to `limit` images from `folder` (searched recursively, sorted), centre-cropped to size, normalised."""
    from ..data.augment import normalize
    from ..data.cache import load_image

    if not os.path.isdir(folder):
        raise DataError(f"image folder {folder!r} does not exist")
    paths = find_images_under(folder)
    images = []
    for path in paths:
        if len(images) == limit:
            break
        img = load_image(path, size)
        if img is not None:
            images.append(img)
    if not images:
        raise DataError(f"no readable images in {folder!r}")
    return normalize(np.stack(images))


def choose_layers(names, count):
    """Evenly spread layers (first and last included)."""
    if count >= len(names):
        return list(names)
    idx = np.unique(np.linspace(0, len(names) - 1, count).round().astype(int))
    return [names[i] for i in idx]


def analyse(model, images, layers, args):
    """Per layer: η (and LAB view), SSIM/ENDSIM per encoding, +1 fraction; plus captures for the figures."""
    from .capture import binary_layers
    from ..nn import LAB

    convs = dict(binary_layers(model))
    names = [n for n in convs]
    feats = capture(model, images, layers)
    rows = {}
    for name in layers:
        f = feats[name]
        nxt = names[names.index(name) + 1] if names.index(name) + 1 < len(names) else None
        next_lab = convs[nxt].binarizer if nxt and isinstance(convs[nxt].binarizer, LAB) else None
        eta_imgs = f["binary"][:args.eta_images]
        eta, eta_lab = layer_uniqueness(eta_imgs, max_channels=args.max_channels, lab_module=next_lab)
        sim = {}
        for enc in ENCODINGS:
            sim[enc] = layer_dissimilarity(f["binary"][:args.ssim_images], f["float"][:args.ssim_images], enc,
                                           args.window, args.max_channels)
        plus, per_channel = plus_one_fraction(f["binary"])
        rows[name] = {"eta": eta, "eta_lab_view": eta_lab, "ssim_endsim": sim, "plus_one": plus,
                      "plus_one_per_channel": per_channel.tolist(), "shape": list(f["binary"].shape[1:])}
    return rows, feats


def draw_layer_plots(out, results, labels, layers):
    """plus_one.png (Fig. 5: +1 fraction per layer, one bar per model), eta.png (Table 1 as lines) and ssim.png
    (Table 2's SSIM, one panel per encoding); returns [(alt text, file name)] of those drawn."""
    series = {lab: {n: r[n]["plus_one"] for n in layers} for lab, r in zip(labels, results)}
    drawn = [("fraction of +1 per layer", bar_chart(None, os.path.join(out, "plus_one.png"),
                                                    "fraction of +1 after binarization, per layer",
                                                    "fraction of +1 outputs", series=series))]

    def eta(fig):
        ax = fig.add_subplot()
        for k, (lab, r) in enumerate(zip(labels, results)):
            ax.plot(range(len(layers)), [r[n]["eta"] for n in layers], "o-", label=f"η {lab}", color=COLOURS[k])
            if any(r[n]["eta_lab_view"] is not None for n in layers):
                ax.plot(range(len(layers)), [r[n]["eta_lab_view"] if r[n]["eta_lab_view"] is not None
                                             else np.nan for n in layers], "s--", color=COLOURS[k],
                        label=f"η {lab} (LAB view)")
        ax.set_xticks(range(len(layers)), layers, rotation=20, ha="right", fontsize=8)
        ax.set(ylabel="uniqueness ratio η (higher: more distinct outputs)", ylim=(0, 1.05))
        outside_legend(fig, ax)

    def ssim(fig):
        axes = fig.subplots(1, len(ENCODINGS), sharey=True, squeeze=False)[0]
        for ax, enc in zip(axes, ENCODINGS):
            for k, (lab, r) in enumerate(zip(labels, results)):
                ax.plot(range(len(layers)), [r[n]["ssim_endsim"][enc][0] for n in layers], "o-", color=COLOURS[k],
                        label=lab)
            ax.set_xticks(range(len(layers)), layers, rotation=30, ha="right", fontsize=7)
            ax.set_title(f"encoding {enc}")
        axes[0].set_ylabel("mean SSIM between channel pairs")
        outside_legend(fig, axes[0])

    drawn.append(("uniqueness ratio per layer", draw(os.path.join(out, "eta.png"), eta, "single",
                                                     "uniqueness ratio η per binary layer")))
    drawn.append(("SSIM between channels per layer", draw(os.path.join(out, "ssim.png"), ssim, "wide",
                                                          "SSIM between the channels of each layer's ±1 output "
                                                          "(lower: more dissimilar)")))
    return [(alt, os.path.basename(path)) for alt, path in drawn if path]


def write_report(out, results, feats, labels, layers, args):
    os.makedirs(out, exist_ok=True)
    lines = ["# minilab analysis report", "",
             f"Images: {args.images} ({args.eta_images} for η, {args.ssim_images} for SSIM/ENDSIM); SSIM window: "
             f"{args.window}; η padding: zero ('same').", ""]
    lab_view = [any(r[n]["eta_lab_view"] is not None for n in layers) for r in results]
    header = []
    for label, view in zip(labels, lab_view):
        header += [f"η {label}"] + ([f"η {label} (LAB view)"] if view else [])
    lines += ["## Table 1 — uniqueness ratio η per layer (higher = more unique outputs)", "",
              "| layer | shape | " + " | ".join(header) + " |", "|---|---|" + "---|" * len(header)]
    for name in layers:
        cells = []
        for r, view in zip(results, lab_view):
            cells.append(f"{r[name]['eta']:.3f}")
            if view:
                v = r[name]["eta_lab_view"]
                cells.append("—" if v is None else f"{v:.3f}")
        lines.append(f"| {name} | {results[0][name]['shape']} | " + " | ".join(cells) + " |")
    lines += ["", "## Table 2 — channel dissimilarity (mean over channel pairs)", "",
              "SSIM: lower = more dissimilar. ENDSIM on ±1 maps lies in [√2, 2] and is *lowest* for independent maps "
              "(see minilab/analysis/similarity.py); every encoding is shown.", ""]
    header = "| layer | " + " | ".join(f"{lab} SSIM {enc} | {lab} ENDSIM {enc}" for lab in labels for enc in ENCODINGS)
    lines += [header + " |", "|---|" + "---|" * (2 * len(ENCODINGS) * len(labels))]
    for name in layers:
        cells = [f"{r[name]['ssim_endsim'][enc][0]:.3f} | {r[name]['ssim_endsim'][enc][1]:.3f}"
                 for r in results for enc in ENCODINGS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Fig. 5 — fraction of +1 after binarization", "",
              "| layer | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name in layers:
        lines.append(f"| {name} | " + " | ".join(f"{r[name]['plus_one']:.3f}" for r in results) + " |")
    lines.append("")
    lines += [f"![{alt}]({name})" for alt, name in draw_layer_plots(out, results, labels, layers)]
    lines += ["", "## Fig. 1/4 — feature maps before and after binarization", ""]
    for name in layers:
        panels = [(f"{lab}: {name}", f[name]["float"][0], f[name]["binary"][0]) for lab, f in zip(labels, feats)]
        fname = f"features_{name.replace('.', '_')}.png"
        if feature_figure(panels, os.path.join(out, fname)):
            lines.append(f"![{name}]({fname})")
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "results.json"), "w") as fh:
        fh.write(strict_json({lab: r for lab, r in zip(labels, results)}, indent=1))
    return os.path.join(out, "report.md")
