"""A packed model's forward as a flat list of steps on arrays, recorded once per input shape.

The module tree is the model as the paper draws it, and the packed model keeps it: the architecture's own forward
code says what runs.  But a packed forward of one image is about forty layer calls, many of them only a few
microseconds of kernel, and each call through the tree pays for Python on the way: Module.__call__, a Tensor around
each result, the packed conv's checks of its input and the lookup of its plan.  That Python runs on one thread
while the others wait, so its share of the forward grows with the number of threads that share the layers.

So the first forward of each input shape runs the tree and records which layer ran on which earlier result.  The
record becomes a program: a list of steps, each a layer's function from array to array (bound to its input's
shape where the layer has `bound_forward`, so its checks ran once, when the step was made) and the number of the
earlier result it reads.  Later forwards of that shape run the program: the same kernels on the same arrays in the
same order, so the logits are the tree's bit for bit (the engine's tests compare them on every architecture; a
downsampling block's step runs its shortcut BatchNorm inside its conv, with the same float32 steps).

What a record assumes: a layer is a function of the one value it is called on (in eval mode nothing else changes
its result), and the model's forward calls the same layers in the same order for every input of one shape (no
branch on the values; minilab's models have none).  The model's modules and parameters stay as they were when it
was recorded: after changing them, call the packed model's `forget_recorded()`.  The tree keeps running where a
record cannot stand for it:

- the model's forward computes something outside its layers (the add and the concatenation in ReActNet's and
  QuickNet's own code): a layer then reads a value that no step made;
- a layer is called with more than one argument, or with keywords;
- a forward hook is registered on a module of the tree (profilers and feature captures must see every call)."""
from ..core.autograd import Tensor
from .frozen import array_function


def step_modules(module):
    """The modules that the program runs as one step each: from the root down, the first module on each branch
    that can run on arrays (a bound float layer, a packed conv or block) or has no children; each once."""
    children = [child for _, child in module.named_children()]
    if hasattr(module, "bound_forward") or "forward_array" in module.__dict__ or not children:
        return [module]
    steps = {}
    for child in children:
        steps.update((id(step), step) for step in step_modules(child))
    return list(steps.values())


def step_function(module, shape):
    """The step's function from array to array, for inputs of `shape`."""
    if hasattr(module, "bound_forward"):
        return module.bound_forward(shape)
    return array_function(module)


class Program:
    """steps: [(function, index of the value it reads, indices of the values no later step reads)].  Value 0 is
    the input, value i the result of step i; `output` is the index of the model's output."""

    def __init__(self, steps, output):
        self.steps, self.output = steps, output

    def __call__(self, x):
        values = [x] + [None] * len(self.steps)
        for i, (function, source, done) in enumerate(self.steps, start=1):
            values[i] = function(values[source])
            for j in done:                  # free each map after its last reader, as the tree's forward does
                values[j] = None
        return values[self.output]


def record(model, x):
    """Run `model` on the Tensor `x` and return (its output, [(step module, its arguments, its keyword arguments,
    its output)] in the order the steps finished).  Each step module's `forward` is wrapped for the one call (a
    forward hook would not see keyword arguments), then put back."""
    calls, wrapped = [], []

    def recorder(module, forward):
        def recording(*args, **kwargs):
            out = forward(*args, **kwargs)
            calls.append((module, args, kwargs, out))
            return out
        return recording

    try:
        for module in step_modules(model):
            wrapped.append((module, module.__dict__.get("forward")))
            object.__setattr__(module, "forward", recorder(module, module.forward))
        out = model(x)
    finally:
        for module, own in wrapped:   # back to the bound forward, or to the class's
            if own is not None:
                object.__setattr__(module, "forward", own)
            else:
                del module.__dict__["forward"]
    return out, calls


def make_program(x, out, calls):
    """The Program that computes `out` from `x` by the recorded calls, or None when they do not account for it."""
    index = {id(x): 0}                # a value (the tensors are all alive in `calls`, so ids are unique) → index
    steps, sources = [], []
    for module, inputs, kwargs, result in calls:
        if kwargs or len(inputs) != 1 or id(inputs[0]) not in index:
            return None
        source = index[id(inputs[0])]
        if result is inputs[0]:       # an Identity: the same value under a second name
            continue
        steps.append(step_function(module, inputs[0].data.shape))
        sources.append(source)
        index[id(result)] = len(steps)
    if id(out) not in index:
        return None
    output = index[id(out)]
    last_reader = {source: i for i, source in enumerate(sources, start=1)}
    done = [[] for _ in steps]
    for value, reader in last_reader.items():
        if value != output:
            done[reader - 1].append(value)
    return Program(list(zip(steps, sources, done)), output)


def record_program(model, x):
    """(the model's output array for the float32 array `x`, the Program for inputs of x's shape or None).  The
    caller runs this under no_grad, with the threads it will use."""
    inp = Tensor(x, _keep_dtype=True)
    out, calls = record(model, inp)
    return out.data, make_program(inp, out, calls)
