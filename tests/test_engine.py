"""The packed inference engine equals the training graph in eval mode: identical binary activation maps and logits
(to rounding against the BLAS float path), for every architecture, both pad values and LAB FP32 / INT8 / INT4."""
import copy
import importlib.util

import numpy as np
import pytest

from minilab import nn
from minilab.core.config import available, use
from minilab.core.autograd import Tensor, no_grad
from minilab.engine import convert, load_packed, save_packed
from minilab.models import create_model

pytestmark = pytest.mark.skipif(not available(), reason="the packed engine needs the extension")


def build(arch, binarizer="lab", size=32, lab_bits=32, **kw):
    nn.init.seed(0)
    config = dict(arch=arch, num_classes=7, image_size=size, width=0.25, binarizer=binarizer, lab_bits=lab_bits, **kw)
    model = create_model(**config)
    rng = np.random.default_rng(1)
    for m in model.modules():            # non-trivial statistics so that folding BatchNorm matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[:] = rng.normal(0, 0.5, m.running_mean.shape)
            m.running_var[:] = rng.uniform(0.5, 2.0, m.running_var.shape)
            if m.weight is not None:
                m.weight.data[:] = rng.uniform(0.5, 1.5, m.weight.shape)
        if isinstance(m, nn.LAB):
            m.bias.data[:] = rng.normal(0, 0.1, m.bias.shape)
            m.beta.data[...] = rng.uniform(0.5, 2.0)
    model.eval()
    return model, config


def capture_training_maps(model, x):
    maps = []
    removers = [conv.binarizer.register_forward_hook(lambda m, i, out: maps.append(out.data.copy()))
                for conv in model.modules() if isinstance(conv, nn.BinaryConv2d)]
    with no_grad():
        logits = model(Tensor(x)).data
    for remove in removers:
        remove()
    return logits, maps


def engine_maps(packed, x):
    convs = packed.packed_convs()
    for c in convs:
        c.capture = []
    logits = packed(x)
    maps = [m for c in convs for m in c.capture]
    for c in convs:
        c.capture = None
    return logits, maps


CASES = [("labbnn", "lab", {}), ("labbnn", "lab", {"size": 96}), ("labbnn", "lab", {"pad_value": 1}), ("labbnn", "sign", {}),
         ("birealnet18", "sign", {}), ("birealnet18", "lab", {"lab_blocks": "0110"}),
         ("birealnet18", "niblack", {}), ("quicknet", "sign", {}), ("quicknet", "lab", {}),
         ("reactnet_a", "sign", {}), ("reactnet_a", "lab", {}), ("xnornet", "sign", {"size": 64}),
         ("xnornet", "lab", {"size": 64})]


@pytest.mark.parametrize("arch,binarizer,kw", CASES)
def test_engine_equals_training_graph(arch, binarizer, kw):
    kw = dict(kw)
    size = kw.pop("size", 32)
    model, config = build(arch, binarizer, size, **kw)
    x = np.random.default_rng(2).standard_normal((2, 3, size, size)).astype(np.float32)
    want, want_maps = capture_training_maps(model, x)
    packed = convert(copy.deepcopy(model), config)
    got, got_maps = engine_maps(packed, x)
    assert len(got_maps) == len(want_maps) > 0
    for a, b in zip(got_maps, want_maps):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got, want)          # same float32 steps in the same order: bit-identical
    with no_grad(), use(packed_conv=False):                 # and the BLAS float forward agrees to rounding
        ref = model(Tensor(x)).data
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # the first forward of a shape ran the module tree and recorded it; the second runs the recorded program,
    # except where the model's own forward adds or concatenates outside its layers (QuickNet, ReActNet)
    np.testing.assert_array_equal(packed(x), want)
    assert (packed.programs[x.shape] is None) == (arch in ("quicknet", "reactnet_a"))


@pytest.mark.parametrize("arch,bits,pairing,threads", [("labbnn", 8, "official", 2), ("labbnn", 4, "channel", 2),
                                                        ("birealnet18", 32, "official", 2), ("quicknet", 8, "channel", 3)])
def test_engine_on_threads_equals_training_graph(arch, bits, pairing, threads):
    """On several threads, logits and maps stay bit-identical to the training graph run on as many threads (the
    float GEMM's blocks follow the thread count, and a block edge may round its last bit differently), for LAB
    with INT8 / INT4 kernels and the released code's pairing too, with the loops split statically (one image at a
    time: config.for_latency) or in dynamic chunks (the training's), with and without the capture (which takes
    the two-call path: LAB, then the conv); every residual block runs fused."""
    from minilab import config
    from minilab.engine.fused_block import PackedResidualBlock

    model, config_ = build(arch, "lab", 32, lab_bits=bits)
    for m in model.modules():
        if isinstance(m, nn.LAB):
            m.pairing = pairing
    x = np.random.default_rng(4).standard_normal((3, 3, 32, 32)).astype(np.float32)
    packed = convert(copy.deepcopy(model), config_, threads=threads)
    ext = config.kernels()
    for n, static in ((threads, False), (threads, True), (1, False)):
        packed.set_threads(n)
        with config.use(threads=n):
            want, want_maps = capture_training_maps(model, x)
        previous = ext.split_loops_statically(static)
        try:
            got, got_maps = engine_maps(packed, x)
            direct = packed(x)          # without the capture: each LAB conv in one call (run_lab)
        finally:
            ext.split_loops_statically(previous)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(direct, want)
        assert len(got_maps) == len(want_maps) > 0
        for a, b in zip(got_maps, want_maps):
            np.testing.assert_array_equal(a, b)
    blocks = [m for m in model.modules() if type(m).__name__ == "ResidualBinaryBlock"]
    assert sum(isinstance(m, PackedResidualBlock) for m in packed.model.modules()) == len(blocks)


@pytest.mark.parametrize("bits", [32, 8, 4])
def test_quantised_lab_storage_round_trips(tmp_path, bits):
    model, config = build("labbnn", "lab", 32, lab_bits=bits)
    x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    want, want_maps = capture_training_maps(model, x)
    packed = convert(copy.deepcopy(model), config)
    size = save_packed(packed, tmp_path / "m.npz")
    loaded = load_packed(tmp_path / "m.npz")
    got, got_maps = engine_maps(loaded, x)
    np.testing.assert_array_equal(got, want)
    for a, b in zip(got_maps, want_maps):
        np.testing.assert_array_equal(a, b)
    assert size == (tmp_path / "m.npz").stat().st_size


def test_lab_int4_file_is_smaller_than_fp32(tmp_path):
    sizes = {}
    for bits in (32, 8, 4):
        model, config = build("labbnn", "lab", 32, lab_bits=bits)
        sizes[bits] = save_packed(convert(model, config), tmp_path / f"{bits}.npz")
    assert sizes[32] > sizes[8] > sizes[4]


def test_trained_checkpoint_converts_exactly(tmp_path):
    from minilab import ops as F
    from minilab.training.checkpoint import load_model_from_checkpoint, save_checkpoint
    from minilab.data import make_synthetic
    from minilab.data.augment import normalize
    from minilab.optim import Adam

    model, config = build("labbnn", "lab", 24)
    model.train()
    images, labels = make_synthetic(64, 24, num_classes=7)
    x = normalize(images)
    opt = Adam(model.parameters())
    for i in range(4):
        loss = F.cross_entropy(model(Tensor(x[i * 16:(i + 1) * 16])), labels[i * 16:(i + 1) * 16])
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_checkpoint(tmp_path / "c.npz", model, opt, {"model": config, "epoch": 1, "batch": 0, "step": 4})
    trained, record = load_model_from_checkpoint(tmp_path / "c.npz")
    trained.eval()
    want, want_maps = capture_training_maps(trained, x[:8])
    got, got_maps = engine_maps(convert(trained, record["model"]), x[:8])
    np.testing.assert_array_equal(got, want)
    assert all(np.array_equal(a, b) for a, b in zip(got_maps, want_maps))


def test_bad_inputs(tmp_path):
    model, config = build("labbnn", "lab", 32)
    packed = convert(model, config)
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 3, 32, 32\)"):
        packed(np.zeros((1, 3, 64, 64), np.float32))
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_packed(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a minilab packed model"):
        load_packed(tmp_path / "other.npz")


def test_bench_model_cli_rejects_a_checkpoint_of_another_architecture(tmp_path, capsys):
    from minilab.bench import main
    from minilab.training.checkpoint import save_checkpoint

    model, config = build("birealnet18", "sign", 32)
    save_checkpoint(tmp_path / "c.npz", model, None, {"model": config})
    assert main(["model", "--arch", "labbnn", "--checkpoint", str(tmp_path / "c.npz")]) == 2
    assert "holds a 'birealnet18' model" in capsys.readouterr().err


def test_bench_model_cli_runs(tmp_path, capsys):
    from minilab.bench import main
    assert main(["model", "--arch", "labbnn", "--image-size", "32", "--num-classes", "10", "--width", "0.25",
                 "--runs", "2", "--float-runs", "1", "--plot", str(tmp_path / "f.png"), "--save",
                 str(tmp_path / "m.npz")]) == 0
    out, err = capsys.readouterr()
    assert "speed-up" in out and "LAB binarize + pack" in out
    if importlib.util.find_spec("matplotlib") is not None:   # the breakdown figure needs the `plot` extra
        assert (tmp_path / "f.png").exists()
    else:
        assert "f.png not drawn" in err and not (tmp_path / "f.png").exists()
    assert "G binary MAC/s" in out and "% of peak" in out
    x = np.zeros((1, 3, 32, 32), np.float32)
    assert load_packed(tmp_path / "m.npz")(x).shape == (1, 10)


def test_bench_model_compares_binarizers_and_threads_interleaved(capsys):
    import json

    from minilab.bench import main
    assert main(["model", "--arch", "labbnn", "--image-size", "32", "--num-classes", "10", "--width", "0.25",
                 "--runs", "3", "--float-runs", "1", "--threads", "2", "--compare-binarizer", "sign",
                 "--compare-threads", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["comparisons"]
    assert [row["what"] for row in rows] == ["latency lab / sign", "speed-up of 2 thread(s) over 1"]
    for row in rows:
        assert row["this"]["runs"] == row["other"]["runs"] == 3
        want = row["this"]["median_ms"] / row["other"]["median_ms"]
        assert row["ratio"] == pytest.approx(want if "latency" in row["what"] else 1 / want)


def test_interleaved_timing_alternates_whole_turns_after_an_untimed_call():
    from minilab.benchmarks.profile import time_interleaved

    calls = []
    a, b = (lambda: calls.append("a")), (lambda: calls.append("b"))
    records = time_interleaved([a, b], runs=5, warmup=1, turn=2)
    assert "".join(calls) == "ab" + "aaabbb" + "aaabbb" + "aabb"      # warm-up, then 1 untimed + 2, 2, 1 timed
    assert [r["runs"] for r in records] == [5, 5]
    calls.clear()
    time_interleaved([a, b], runs=3, warmup=0)
    assert "".join(calls) == "ababab"


def test_float_layers_are_bound_to_their_kernels_and_give_the_same_logits(tmp_path):
    """convert and load_packed bind the float layers (BatchNorm, ReLU, AvgPool, convs, pooling head, classifier);
    the logits equal those of the same modules run through their usual forward."""
    from minilab.engine.storage import save_packed

    model, config = build("labbnn", "lab", 32)
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
    for packed in (convert(copy.deepcopy(model), config), None):
        if packed is None:
            save_packed(convert(copy.deepcopy(model), config), tmp_path / "m.npz")
            packed = load_packed(tmp_path / "m.npz")
        bound = [m for m in packed.model.modules() if "forward" in m.__dict__]
        kinds = {type(m).__name__ for m in bound}
        assert {"BatchNorm2d", "ReLU", "AvgPool2d", "Conv2d", "GlobalAvgPool", "Linear"} <= kinds
        got = packed(x)
        for m in bound:
            # back to the module's own forward (Function.apply and the twins), in the tree and in the program
            del m.__dict__["forward"], m.__dict__["forward_array"]
        packed.forget_recorded()
        np.testing.assert_array_equal(packed(x), got)
        np.testing.assert_array_equal(packed(x), got)


def test_packed_model_replays_its_recorded_forward_until_a_hook_is_registered():
    """From the second forward of a shape on, the packed model runs the program recorded from the first, without
    its module tree; a forward hook on any of its modules sends the forwards back through the tree, so that the
    hook sees each call, and the program comes back once the hook is removed."""
    model, config = build("labbnn", "lab", 32)
    packed = convert(copy.deepcopy(model), config, threads=2)
    x = np.random.default_rng(6).standard_normal((1, 3, 32, 32)).astype(np.float32)
    want = packed(x)
    forward = packed.model.forward

    def tree_forward(t):
        trees.append(t.data.shape)
        return forward(t)

    trees, hooked = [], []
    object.__setattr__(packed.model, "forward", tree_forward)
    np.testing.assert_array_equal(packed(x), want)
    np.testing.assert_array_equal(packed(x[:, :, ::-1].copy()[:, :, ::-1]), want)      # a copy of x: same program
    assert trees == []
    remove = packed.model.blocks[5].register_forward_hook(lambda m, inputs, out: hooked.append(out.data.shape))
    np.testing.assert_array_equal(packed(x), want)
    assert trees == [x.shape] and hooked == [(1, 32, 4, 4)]
    remove()
    np.testing.assert_array_equal(packed(x), want)
    assert trees == [x.shape] and len(hooked) == 1
    remove = packed.model.pool.register_forward_pre_hook(lambda m, inputs: hooked.append(inputs[0].data.shape))
    np.testing.assert_array_equal(packed(x), want)
    assert trees == [x.shape] * 2 and hooked[1:] == [(1, 128, 1, 1)]
    remove()
    x2 = np.concatenate([x, x[:, :, ::-1]])       # a new shape: recorded from the tree again
    got = packed(x2)
    np.testing.assert_array_equal(packed(x2), got)
    assert trees == [x.shape] * 2 + [x2.shape]
    packed.forget_recorded()                      # after a change to the model: the tree again, then the program
    packed(x), packed(x)
    assert trees == [x.shape] * 2 + [x2.shape, x.shape]


def test_recorded_forward_runs_the_shortcut_batchnorm_inside_the_conv():
    """A downsampling block's step applies its shortcut BatchNorm in the conv's output transform: the BatchNorm's
    own forward never runs there, and the logits are the tree's."""
    model, config = build("labbnn", "lab", 32)
    packed = convert(copy.deepcopy(model), config)
    x = np.random.default_rng(7).standard_normal((1, 3, 32, 32)).astype(np.float32)
    shortcut_bns = [m.shortcut_bn for m in packed.model.blocks if m.downsample]
    assert len(shortcut_bns) == 3 and all(bn.eval_constants is not None for bn in shortcut_bns)

    def refuse(array):
        raise AssertionError("the shortcut BatchNorm ran as its own pass")

    want = packed(x)                              # the tree, which runs each BatchNorm through its Tensor forward
    for bn in shortcut_bns:
        object.__setattr__(bn, "forward_array", refuse)
    packed.forget_recorded()
    np.testing.assert_array_equal(packed(x), want)
    np.testing.assert_array_equal(packed(x), want)


class Scale(nn.Module):
    """A leaf layer: y = k·x."""

    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return Tensor(x.data * np.float32(self.k), _keep_dtype=True)


class Pair(nn.Module):
    """A layer of two values: y = a + b."""

    def forward(self, a, b):
        return Tensor(a.data + b.data, _keep_dtype=True)


class Net(nn.Module):
    def __init__(self, wiring):
        super().__init__()
        self.wiring = wiring
        self.skip, self.a, self.b, self.c, self.pair = nn.Identity(), Scale(2), Scale(3), Scale(5), Pair()

    def forward(self, x):
        y = self.a(self.skip(x))
        if self.wiring == "chain":
            return self.c(self.b(y))
        if self.wiring == "branch":                 # b's result is read by nothing; c reads y
            self.b(y)
            return self.c(y)
        if self.wiring == "add":                    # a value made outside the layers
            return self.c(self.b(y) + y)
        if self.wiring == "keyword":                # a layer called with a keyword: a record would drop it
            return self.c(x=self.b(y))
        return self.c(self.pair(self.b(y), y))      # a layer of two values


@pytest.mark.parametrize("wiring,program", [("chain", True), ("branch", True), ("add", False), ("pair", False),
                                            ("keyword", False)])
def test_a_program_is_made_only_from_layers_of_one_value(wiring, program):
    """make_program accounts for every value by the layer calls that made it, names an Identity's output as its
    input, frees each value after its last reader and puts every wrapped forward back; a value made outside the
    layers, a layer called on two values or with a keyword leaves no program (the tree runs)."""
    from minilab.engine.program import record_program

    x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    net = Net(wiring)
    with no_grad():
        out, made = record_program(net, x)
        want = Net(wiring)(Tensor(x)).data
    assert not any("forward" in m.__dict__ for m in net.modules())
    np.testing.assert_array_equal(out, want)
    assert (made is not None) == program
    if made is None:
        return
    np.testing.assert_array_equal(made(x), want)
    sources = [source for _, source, _ in made.steps]
    freed = [done for _, _, done in made.steps]
    if wiring == "chain":                           # x → a → b → c: each value freed by its one reader
        assert sources == [0, 1, 2] and freed == [[0], [1], [2]] and made.output == 3
    else:                                           # x → a → (b, c): y is freed by c, its last reader
        assert sources == [0, 1, 1] and freed == [[0], [], [1]] and made.output == 3


def test_operator_work_counts_every_binary_mac():
    """bench model's fractions of peak divide these counts by time: the binary MACs are Σ N·O·OH·OW·C·k² over the
    binary convs of the float model, and LAB's float MACs Σ N·H·W·2C·9 over its LAB layers."""
    from minilab.benchmarks.peak import fractions, operator_work

    model, config = build("labbnn", "lab", 32)
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
    want_binary = want_lab = 0
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, out: shapes.__setitem__(id(m), (i[0].data.shape, out.data.shape)))
             for m in model.modules() if isinstance(m, nn.BinaryConv2d)]
    with no_grad():
        model(Tensor(x))
    for remove in hooks:
        remove()
    for m in model.modules():
        if isinstance(m, nn.BinaryConv2d):
            (n, c, h, w), (_, o, oh, ow) = shapes[id(m)]
            want_binary += n * o * oh * ow * c * 9
            want_lab += n * h * w * 2 * c * 9
    work = operator_work(convert(copy.deepcopy(model), config), x)
    assert work["binary conv"] == ("binary MAC", want_binary)
    assert work["LAB binarize + pack"] == ("float MAC", want_lab)
    assert work["first conv"][0] == "float MAC" and work["BN / activation"][0] == "byte"
    rows = fractions({"binary conv": 2.0}, work, {"binary MAC": want_binary / 1e-3, "float MAC": 1, "byte": 1})
    assert rows == {"binary conv": (want_binary / 2e-3, "binary MAC", 0.5)}


def test_profiler_hook_times_every_category_and_removes_itself():
    from minilab.benchmarks.profile import breakdown, install_profiler

    model, config = build("labbnn", "lab")
    packed = convert(copy.deepcopy(model), config)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    seen = {}
    remove = install_profiler(packed.model, lambda category, s: seen.setdefault(category, []).append(s))
    packed(x)
    remove()
    for category in ("first conv", "binary conv", "LAB binarize + pack", "pooling", "BN / activation",
                     "classifier"):
        assert category in seen and all(s >= 0 for s in seen[category]), category
    assert all(not m.__dict__.get("_pre_hooks") and not m.__dict__.get("_hooks") for m in packed.model.modules())
    assert all(getattr(m, "profiler", None) is None for m in packed.model.modules())
    count = len(seen["binary conv"])
    packed(x)                                                   # removed: nothing more is recorded
    assert len(seen["binary conv"]) == count
    parts, total = breakdown(packed, x, runs=2)
    assert parts["binary conv"] > 0 and total >= sum(v for k, v in parts.items() if k != "other") - 1e-9
