"""Addressing a module tree by dotted names ("blocks.3.conv"), to swap one module for another in place."""


def get_submodule(root, name):
    """The module at dotted `name` under `root` (list items by index)."""
    module = root
    for part in name.split("."):
        module = module[int(part)] if isinstance(module, (list, tuple)) else getattr(module, part)
    return module


def set_submodule(root, name, new):
    """Put `new` at dotted `name` under `root`, in place of what is there."""
    parent_name, _, last = name.rpartition(".")
    parent = get_submodule(root, parent_name) if parent_name else root
    if isinstance(parent, list):
        parent[int(last)] = new
    else:
        object.__setattr__(parent, last, new)
