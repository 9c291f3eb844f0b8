"""`Module` and `Parameter`: a tree of layers whose parameters and buffers are plain NumPy arrays.

A Module finds its children and parameters by looking at its attributes (Parameters, Modules, and lists of
Modules), in the order they were assigned, which gives every array a stable dotted name for `state_dict`.
Buffers (BatchNorm's running statistics) are NumPy arrays registered with `register_buffer`."""
import os
import tempfile

import numpy as np

from ..core.autograd import Tensor


class Parameter(Tensor):
    """A trainable Tensor.  `clip`, if set, is the latent-weight constraint the optimizer applies after each step
    (w ← clip(w, −clip, clip)), as Larq's WeightClip does for binary convs.  `binary` marks weights that are
    binarized in the forward (1 bit each in the model size)."""

    def __init__(self, data, clip=None, binary=False):
        super().__init__(np.array(data, dtype=np.float32), requires_grad=True)
        self.clip = clip
        self.binary = binary


class Module:
    # Goes up each time a forward hook is added to or removed from any module, so that code which skips
    # Module.__call__ for speed (the packed model's program) knows when to look for hooks in its tree again.
    hook_changes = 0

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_buffers", {})

    def __setattr__(self, name, value):
        if "_buffers" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() before assigning "
                               "attributes")
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        self._buffers[name] = np.asarray(array, dtype=np.float32)

    def __getattr__(self, name):
        buffers = self.__dict__.get("_buffers", {})
        if name in buffers:
            return buffers[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        for hook in self.__dict__.get("_pre_hooks", ()):
            hook(self, args)
        out = self.forward(*args, **kwargs)
        for hook in self.__dict__.get("_hooks", ()):
            hook(self, args, out)
        return out

    def register_forward_pre_hook(self, fn):
        """Call fn(module, inputs) before every forward of this module (the engine's profiler starts its clock).
        Returns a function that removes the hook."""
        return self._add_hook("_pre_hooks", fn)

    def register_forward_hook(self, fn):
        """Call fn(module, inputs, output) after every forward of this module (feature capture, summaries).
        Returns a function that removes the hook."""
        return self._add_hook("_hooks", fn)

    def _add_hook(self, kind, fn):
        hooks = self.__dict__.setdefault(kind, [])
        hooks.append(fn)
        Module.hook_changes += 1

        def remove():
            hooks.remove(fn)
            Module.hook_changes += 1
        return remove

    def has_hooks(self):
        """True when a forward hook or pre-hook is registered on this module."""
        return bool(self.__dict__.get("_hooks") or self.__dict__.get("_pre_hooks"))

    # ---- the tree -----------------------------------------------------------
    def named_children(self):
        for name, value in self.__dict__.items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item

    def named_modules(self, prefix=""):
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop(0)
            yield name, module
            for child_name, child in module.named_children():
                stack.append((f"{name}.{child_name}" if name else child_name, child))

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_parameters(self):
        for prefix, module in self.named_modules():
            for name, value in module.__dict__.items():
                if isinstance(value, Parameter):
                    yield (f"{prefix}.{name}" if prefix else name), value

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        for prefix, module in self.named_modules():
            for name, value in module._buffers.items():
                yield (f"{prefix}.{name}" if prefix else name), value

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    # ---- state ----------------------------------------------------------------
    def state_dict(self):
        """Every parameter and buffer as a NumPy array (copies), keyed by dotted name."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: b.copy() for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state, strict=True):
        own = dict(self.named_parameters())
        buffers = {name: b for name, b in self.named_buffers()}
        missing = [k for k in list(own) + list(buffers) if k not in state]
        unexpected = [k for k in state if k not in own and k not in buffers]
        if strict and (missing or unexpected):
            raise KeyError(f"state dict does not match {type(self).__name__}: missing {missing[:5]}"
                           f"{'…' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                           f"{'…' if len(unexpected) > 5 else ''}")
        for name, value in state.items():
            target = own[name].data if name in own else buffers.get(name)
            if target is None:
                continue
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(f"state dict entry {name!r} has shape {value.shape}, the model expects {target.shape}")
            if value.dtype.kind != target.dtype.kind:   # a cast would silently turn, say, text or ints into weights
                raise ValueError(f"state dict entry {name!r} is {value.dtype}, the model expects {target.dtype}")
            target[...] = value

    def save(self, path):
        """Write the state dict as an .npz file atomically (temp file + rename)."""
        save_npz_atomic(path, self.state_dict())

    def load(self, path):
        self.load_state_dict(load_npz(path))
        return self

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in children:
            lines += ["  " + line for line in f"({name}): {child!r}".splitlines()]
        return "\n".join(lines + [")"])

    def extra_repr(self):
        return ""


def user_file_mode():
    """The mode open() gives a new file: rw for everyone, less the process' umask.  (A temporary file from
    tempfile.mkstemp is 0600 whatever the umask; a file renamed into place should not keep that.)"""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def save_npz_atomic(path, arrays: dict):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp.npz")
    try:
        os.fchmod(fd, user_file_mode())
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_npz(path) -> dict:
    """Load an .npz into a dict, with a clear error for a missing, truncated or foreign file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such checkpoint: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as error:  # zipfile.BadZipFile, EOFError, ValueError, OSError...
        raise ValueError(f"{path} is not a readable minilab .npz file (truncated or corrupt?): {error}") from None
