"""minilab.analysis.graph: the order backward walks, the gradients it passes along, and the drawing of the graph."""
import numpy as np
import pytest
from PIL import Image

import minilab as ml
from minilab import nn
from minilab.testing import assert_close_in_rounding
from minilab.analysis.graph import draw_graph, graph, layered_layout, node_gradients, parse_plain, topological_order


def small_graph():
    x = ml.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = ml.tensor([0.5, -1.0, 2.0], requires_grad=True)
    t1 = x * w
    t2 = t1 + x
    return x, w, t1, t2, t2.sum()


def test_topological_order_puts_every_tensor_before_its_parents():
    x, w, t1, t2, y = small_graph()
    order = topological_order(y)
    place = {id(t): i for i, t in enumerate(order)}
    assert order[0] is y and len(order) == 5
    for node in order:
        for parent in node._parents:
            assert place[id(node)] < place[id(parent)]


def test_node_gradients_match_backward_and_keep_the_graph():
    x, w, t1, t2, y = small_graph()
    grads = node_gradients(y)
    np.testing.assert_array_equal(grads[id(t1)], np.ones(3))
    np.testing.assert_array_equal(grads[id(x)], w.data + 1)       # x enters twice: w through Mul, 1 through Add
    assert x.grad is None                                          # nothing written to the leaves
    y.backward()
    assert_close_in_rounding(grads[id(w)], w.grad, magnitude=3, terms=2)
    with pytest.raises(RuntimeError, match="retain_graph"):
        node_gradients(y)                                          # backward freed the graph


def test_graph_has_one_op_box_per_op_and_labels_shape_dtype_and_grad():
    x, w, t1, t2, y = small_graph()
    y.backward(retain_graph=True)
    nodes, edges = graph(y, {"x": x, "w": w}, node_gradients(y))
    ops = sorted(n["label"] for n in nodes.values() if n["kind"] == "op")
    assert ops == ["Add", "Mul", "Sum"]
    labels = {n["label"].split("\n")[0]: n["label"] for n in nodes.values() if n["kind"] == "tensor"}
    assert set(labels) == {"x", "w", "t1", "t2", "output"}
    assert "3 float32" in labels["x"] and "grad [1.5, 0. , 3. ]" in labels["x"]
    assert len(edges) == 3 + 3 + 2          # Mul: two inputs and its output, Add likewise, Sum one and one


def test_layered_layout_reads_left_to_right():
    x, w, t1, t2, y = small_graph()
    nodes, edges = graph(y)
    pos = layered_layout(nodes, edges)
    for a, b in edges:
        assert pos[a][0] < pos[b][0]
    column_of_w = pos[f"t{id(w)}"][0]
    assert column_of_w == pos[f"op{id(t1)}"][0] - 1                 # a leaf sits just before its first use


def test_parse_plain_reads_dots_node_lines():
    text = 'graph 1 4 2\nnode t1 0.5 1.25 1 0.5 "t1" solid box black lightgrey\nnode "op2" 2 1.25 1 0.5 x\nedge t1 op2 0\nstop\n'
    assert parse_plain(text) == {"t1": (0.5, 1.25), "op2": (2.0, 1.25)}


def test_draw_graph_of_a_lab_block_writes_a_matplotlib_png(tmp_path):
    pytest.importorskip("matplotlib")
    lab = nn.LAB(2)
    x = ml.tensor(np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32), requires_grad=True)
    out = lab(x).mean()
    out.backward()                                                  # freed: the leaves' .grad are still drawn
    fig = draw_graph(out, tmp_path / "lab.png", names={"x": x, "β": lab.beta}, layout="layered")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.startswith("LabArgMax") for t in texts) and any(t.startswith("β\nscalar float32") and "grad" in t for t in texts)
    image = Image.open(tmp_path / "lab.png")
    assert image.info.get("Software", "").startswith("Matplotlib") and image.size[0] > image.size[1]


def test_draw_graph_without_dot_refuses_the_dot_layout(monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="Graphviz"):
        draw_graph(small_graph()[-1], layout="dot")
