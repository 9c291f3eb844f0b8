"""Drawing the autograd graph: what `backward()` walks, as a picture and as a list.

    topological_order(y)   the tensors reachable from y, every tensor before the tensors it was computed from —
                           exactly the order in which `y.backward()` visits them
    node_gradients(y)      ∂y/∂t for every tensor t of the graph (the values backward passes along), while the
                           graph is still kept (`backward(retain_graph=True)`, or before any backward)
    draw_graph(y)          a matplotlib figure: every op a rounded box, every tensor a square box with its name,
                           shape and dtype (and its gradient where one is known), arrows in the forward direction

The layout puts every leaf one column before its first use and every op one column after its latest input, so
the forward reads left to right and backward right to left.  When Graphviz's `dot` program is installed its
layout is used instead; the drawing itself is always matplotlib's, so nothing beyond matplotlib is needed.
"""
import shutil
import subprocess

import numpy as np

from . import plotting
from ..core.autograd import Tensor, topological_order  # noqa: F401  (the order backward() walks; tutorials print it)


def node_gradients(tensor: Tensor, grad=None) -> dict:
    """{id(t): ∂(Σ tensor·grad)/∂t} for every tensor t reachable from `tensor`, computed with the ops' own
    backward methods in `topological_order` — the same walk as `Tensor.backward`, but it keeps every
    intermediate gradient, writes no `.grad` and frees nothing.  Needs the graph's saved arrays: call it before
    `backward()`, or after `backward(retain_graph=True)`."""
    order = topological_order(tensor)
    if any(node._ctx is not None and node._ctx.freed for node in order):
        raise RuntimeError("node_gradients: this graph was freed by backward(); call backward(retain_graph=True) "
                           "to keep it, or draw the graph before backward()")
    grads = {id(tensor): np.ones_like(tensor.data) if grad is None else np.asarray(grad, tensor.dtype)}
    for node in order:
        g = grads.get(id(node))
        if g is None or node._op is None:
            continue
        parent_grads = node._op.backward(node._ctx, g)
        if not isinstance(parent_grads, tuple):
            parent_grads = (parent_grads,)
        for parent, pg in zip(node._parents, parent_grads):
            if pg is not None and parent.requires_grad:
                grads[id(parent)] = pg if id(parent) not in grads else grads[id(parent)] + pg
    return grads


def _short(values: np.ndarray, most=4) -> str:
    """A tensor's values in a few characters: all of them when there are at most `most`, else their norm."""
    values = np.asarray(values)
    if values.size <= most:
        return np.array2string(values.ravel() if values.ndim > 1 else values, precision=3, separator=", ",
                               suppress_small=True)
    return f"‖·‖ = {np.linalg.norm(values):.3g}"


def graph(tensor: Tensor, names=None, gradients=None):
    """The graph as plain data: (nodes, edges).  nodes: {key: dict(kind='op' | 'tensor', label=…)}; edges:
    [(from_key, to_key)] in the forward direction (input tensor → op → output tensor).  `names` maps a label to a
    tensor ({"x": x}); `gradients` maps id(tensor) to its gradient (e.g. from `node_gradients`)."""
    label_of = {id(t): name for name, t in (names or {}).items()}
    gradients = gradients or {}
    nodes, edges, counter = {}, [], 0
    for node in reversed(topological_order(tensor)):       # inputs first, so unnamed tensors number in forward order
        key = f"t{id(node)}"
        if id(node) in label_of:
            name = label_of[id(node)]
        elif node is tensor:
            name = "output"
        else:
            counter += 1
            name = f"t{counter}"
        shape = "×".join(map(str, node.shape)) or "scalar"
        lines = [name, f"{shape} {node.dtype}"]
        if node.size <= 4:
            lines.append(f"value {_short(node.data)}")
        grad = gradients.get(id(node), node.grad if node._op is None else None)
        if grad is not None:
            lines.append(f"grad {_short(grad)}")
        if node._op is not None:                          # the op first, so every node follows its inputs
            op_key = f"op{id(node)}"
            # the op's name, also when its compiled twin ran (a twin is bound to the reference it matches)
            reference = getattr(node._op, "reference", node._op)
            twin = "\ncompiled twin" if reference is not node._op else ""
            nodes[op_key] = dict(kind="op", label=reference.__name__ + twin)
            edges += [(f"t{id(parent)}", op_key) for parent in node._parents]
            edges.append((op_key, key))
        nodes[key] = dict(kind="tensor", label="\n".join(lines), leaf=node._op is None, grad=grad is not None)
    return nodes, edges


def _columns(nodes, edges):
    """Column of every node: an op one after its latest input, its output one after it, a leaf one before its
    first use (so a weight sits beside the op that uses it, not at the far left)."""
    parents = {k: [] for k in nodes}
    children = {k: [] for k in nodes}
    for a, b in edges:
        parents[b].append(a)
        children[a].append(b)
    column = {}
    for key in nodes:                                     # nodes come inputs-first: inner parents are placed
        inner = [column[p] for p in parents[key] if parents[p]]
        if parents[key]:
            column[key] = max(inner, default=0) + 1
    for key in nodes:
        if not parents[key]:
            column[key] = min((column[c] for c in children[key]), default=1) - 1
    low = min(column.values())
    return {k: c - low for k, c in column.items()}, parents, children


def layered_layout(nodes, edges):
    """{key: (x, y)}: columns left to right, rows ordered by the mean row of each node's neighbours (a few sweeps
    each way), so that edges cross little."""
    column, parents, children = _columns(nodes, edges)
    layers = {}
    for key in nodes:
        layers.setdefault(column[key], []).append(key)
    row = {k: float(i) for layer in layers.values() for i, k in enumerate(layer)}
    for sweep in range(6):
        neighbours = parents if sweep % 2 == 0 else children
        for c in sorted(layers, reverse=sweep % 2 == 1):
            layer = layers[c]
            mean = {k: np.mean([row[n] for n in neighbours[k]]) if neighbours[k] else row[k] for k in layer}
            layer.sort(key=lambda k: mean[k])
            for i, k in enumerate(layer):
                row[k] = float(i)
    size = {c: len(layer) for c, layer in layers.items()}
    return {k: (float(column[k]), (size[column[k]] - 1) / 2 - row[k]) for k in nodes}


def parse_plain(text):
    """{key: (x, y)} from the `plain` output of Graphviz's dot (lines `node NAME X Y …`)."""
    positions = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "node":
            positions[fields[1].strip('"')] = (float(fields[2]), float(fields[3]))
    return positions


def graphviz_layout(nodes, edges, dot):
    """{key: (x, y)} laid out by dot (left to right), scaled to about one unit between columns."""
    lines = ["digraph G { rankdir=LR; nodesep=0.3; ranksep=0.5;"]
    for key, node in nodes.items():
        height = 0.3 * (node["label"].count("\n") + 1)
        lines.append(f'"{key}" [shape=box, width=1.6, height={height:.2f}];')
    lines += [f'"{a}" -> "{b}";' for a, b in edges]
    lines.append("}")
    text = subprocess.run([dot, "-Tplain"], input="\n".join(lines), capture_output=True, text=True,
                          check=True, timeout=60).stdout
    positions = parse_plain(text)
    xs = sorted({round(x, 3) for x, _ in positions.values()})
    step = min((b - a for a, b in zip(xs, xs[1:])), default=1.0) or 1.0
    return {k: (x / step, y / step) for k, (x, y) in positions.items()}


def draw_graph(tensor: Tensor, path=None, names=None, gradients="auto", layout="auto", title=None):
    """Draw the graph that produced `tensor` and return the matplotlib Figure (saved as a PNG at `path` too when
    given; None without matplotlib).

    names:      {"x": x, "w": w} — labels for the tensors you know; the others are numbered t1, t2, … in
                forward order and the result is called "output".
    gradients:  "auto" shows ∂output/∂t on every tensor while the graph is kept (before backward, or after
                backward(retain_graph=True)), and the leaves' .grad otherwise; False shows none.
    layout:     "auto" (Graphviz's dot when installed, else minilab's layered layout), "dot" or "layered"."""
    grads = {}
    if gradients == "auto" and tensor.requires_grad:
        try:
            grads = node_gradients(tensor)
        except RuntimeError:
            grads = {}                                    # freed graph: only the leaves' .grad remain
    nodes, edges = graph(tensor, names, grads if gradients else {})
    if not gradients:
        for node in nodes.values():
            node["label"] = "\n".join(line for line in node["label"].split("\n") if not line.startswith("grad"))
    dot = shutil.which("dot") if layout in ("auto", "dot") else None
    if layout == "dot" and dot is None:
        raise RuntimeError("draw_graph(layout='dot') needs Graphviz's dot program on PATH; use layout='layered'")
    positions = graphviz_layout(nodes, edges, dot) if dot else layered_layout(nodes, edges)
    xs = [x for x, _ in positions.values()]
    ys = [y for _, y in positions.values()]
    width = min(16.0, 1.5 + 1.55 * (max(xs) - min(xs) + 1))
    height = min(12.0, 1.0 + 1.0 * (max(ys) - min(ys) + 1))

    def fill(fig):
        ax = fig.add_subplot()
        ax.set_axis_off()
        boxes = {}
        for key, node in nodes.items():
            x, y = positions[key]
            if node["kind"] == "op":
                style = dict(boxstyle="round,pad=0.35", facecolor="#FBE3D0", edgecolor=plotting.COLOURS[1])
                boxes[key] = ax.text(x, y, node["label"], ha="center", va="center", fontsize=8, weight="bold",
                                     bbox=style, zorder=3)
            else:
                edge = plotting.COLOURS[0] if node.get("leaf") else plotting.GREY
                style = dict(boxstyle="square,pad=0.35", facecolor="#DCEBF5" if node.get("leaf") else "white",
                             edgecolor=edge)
                boxes[key] = ax.text(x, y, node["label"], ha="center", va="center", fontsize=7,
                                     family="DejaVu Sans Mono", bbox=style, zorder=3, linespacing=1.3)
        for a, b in edges:
            # an edge that skips a column bends around the boxes in between
            bend = -0.25 if positions[b][0] - positions[a][0] > 1.5 else 0.0
            ax.annotate("", xy=positions[b], xytext=positions[a], zorder=2,
                        arrowprops=dict(arrowstyle="-|>", color="#444444", lw=1.0, shrinkA=0, shrinkB=0,
                                        patchA=boxes[a].get_bbox_patch(), patchB=boxes[b].get_bbox_patch(),
                                        connectionstyle=f"arc3,rad={bend}"))
        ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
        ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
        shown = any("grad" in node["label"] for node in nodes.values())
        ax.set_title("forward →  (blue: leaves, orange: ops" + (", grad = ∂output/∂tensor)" if shown else ")"),
                     fontsize=9, color=plotting.GREY, loc="left")

    Figure = plotting.require_matplotlib(path or "the graph")
    if Figure is None:
        return None
    with plotting._style():
        fig = Figure(figsize=(width, height), dpi=plotting.DPI, layout="constrained")
        fill(fig)
        if title:
            fig.suptitle(title)
        if path:
            fig.savefig(path, dpi=plotting.DPI, metadata={"Title": title or "autograd graph"})
    return fig


__all__ = ["draw_graph", "graph", "layered_layout", "node_gradients", "parse_plain", "topological_order"]
