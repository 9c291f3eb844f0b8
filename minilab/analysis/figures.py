"""Feature-map figures (the paper's Fig. 1 / 4): grids of pre- and post-binarization maps, written with Pillow."""
import numpy as np


def to_gray(m):
    """A float map scaled to 0–255 (per map: min → black, max → white); ±1 maps become black / white."""
    m = np.asarray(m, dtype=np.float64)
    lo, hi = m.min(), m.max()
    return np.zeros(m.shape, np.uint8) if hi == lo else ((m - lo) / (hi - lo) * 255).astype(np.uint8)


def grid(maps, columns=8, cell=64, gap=2):
    """(K, H, W) maps → one uint8 image: `columns` per row, each upscaled to `cell` px (nearest neighbour)."""
    from PIL import Image

    k = len(maps)
    rows = -(-k // columns)
    out = np.full((rows * (cell + gap) + gap, columns * (cell + gap) + gap), 255, np.uint8)
    for i, m in enumerate(maps):
        tile = np.asarray(Image.fromarray(to_gray(m)).resize((cell, cell), Image.NEAREST))
        r, c = divmod(i, columns)
        out[gap + r * (cell + gap):gap + r * (cell + gap) + cell, gap + c * (cell + gap):gap + c * (cell + gap) + cell] = tile
    return out


def feature_figure(panels, path, channels=8, cell=64):
    """panels: [(title, float maps (C, H, W), binary maps (C, H, W))] — one row pair per panel (e.g. sign vs LAB
    model, same layer, same image): the float input to the binarizer above, its ±1 output below."""
    from PIL import Image, ImageDraw

    blocks = []
    for title, float_maps, binary_maps in panels:
        top = grid(float_maps[:channels], channels, cell)
        bottom = grid(binary_maps[:channels], channels, cell)
        label = np.full((18, top.shape[1]), 255, np.uint8)
        blocks += [label, top, bottom]
    img = Image.fromarray(np.vstack(blocks)).convert("RGB")
    draw = ImageDraw.Draw(img)
    y = 0
    for (title, _, _), block_height in zip(panels, [b.shape[0] for b in blocks[1::3]]):
        draw.text((4, y + 3), f"{title}   (top: before binarization, bottom: after)", fill=(0, 0, 0))
        y += 18 + 2 * block_height
    img.save(path)
    return path


def bar_chart(values: dict, path, title, fmt="{:.2f}"):
    """Horizontal bars (Fig. 5's +1 fractions per layer, …)."""
    from PIL import Image, ImageDraw

    items = list(values.items())
    width, bar_h, left = 760, 20, 230
    img = Image.new("RGB", (width, 50 + bar_h * len(items)), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 10), title, fill="black")
    top = max([abs(v) for _, v in items] + [1e-9])
    for i, (name, value) in enumerate(items):
        y = 35 + i * bar_h
        draw.text((10, y + 4), name[:36], fill="black")
        length = int((width - left - 70) * abs(value) / top)
        draw.rectangle([left, y + 3, left + length, y + bar_h - 3], fill=(70, 110, 180))
        draw.text((left + length + 5, y + 4), fmt.format(value), fill="black")
    img.save(path)
    return path
