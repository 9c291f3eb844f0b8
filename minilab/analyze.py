"""`python -m minilab.analyze`: a Markdown report of the paper's analyses for one checkpoint, or two side by side
(e.g. sign vs LAB): Table 1 (uniqueness ratio η per layer, with LAB's view), Table 2 (SSIM / ENDSIM between
channels, every encoding), Fig. 5 (fraction of +1 per layer, as a table, JSON and PNG) and Fig. 1/4-style figures."""
import argparse
import sys

from .analysis.report import analyse, choose_layers, load_images, write_report
from .core.validate import Refused, check_output_dir, int_range
from .data.folder import DataError


def build_parser():
    """The command line of `python -m minilab.analyze` (the docs render their page from it)."""
    p = argparse.ArgumentParser(prog="python -m minilab.analyze", description=__doc__)
    p.add_argument("--checkpoint", required=True, help="training checkpoint (e.g. the LAB model)")
    p.add_argument("--compare", default=None, help="a second checkpoint shown beside it (e.g. the sign model)")
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    p.add_argument("--out", default="report", help="output folder: report.md, results.json, PNGs")
    p.add_argument("--layers", type=int_range(1, 1000), default=4,
                   help="how many binary layers to analyse, spread over depth (1-1000)")
    p.add_argument("--eta-images", type=int_range(1, 10_000), default=20, help="images for η (the paper: 20)")
    p.add_argument("--ssim-images", type=int_range(1, 10_000), default=10, help="images for SSIM/ENDSIM (the paper: 10)")
    p.add_argument("--max-channels", type=int_range(1, 100_000), default=None, help="limit channels per layer (speed)")
    p.add_argument("--window", default="gaussian", choices=("gaussian", "uniform"))
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_output_dir(args.out, "--out")
    except Refused as error:
        parser.error(str(error))
    from .training.checkpoint import load_model_from_checkpoint
    from .analysis.capture import binary_layers

    try:
        models = [load_model_from_checkpoint(args.checkpoint)]
        if args.compare:
            models.append(load_model_from_checkpoint(args.compare))
        sizes = {rec["model"]["image_size"] for _, rec in models}
        if len(sizes) != 1:
            raise ValueError(f"the checkpoints were trained at different image sizes {sorted(sizes)}")
        names = [[n for n, _ in binary_layers(m)] for m, _ in models]
        if len(names) == 2 and names[0] != names[1]:
            raise ValueError("the two checkpoints have different architectures; compare like with like")
        images = load_images(args.images, sizes.pop(), max(args.eta_images, args.ssim_images))
        layers = choose_layers(names[0], args.layers)
        labels, results, feats = [], [], []
        for path, (model, rec) in zip([args.checkpoint, args.compare], models):
            label = rec["model"]["binarizer"]
            labels.append(label if label not in labels else f"{label}-2")
            r, f = analyse(model, images, layers, args)
            results.append(r)
            feats.append(f)
        report = write_report(args.out, results, feats, labels, layers, args)
    except (DataError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
