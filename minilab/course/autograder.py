"""`gradescope OUT.zip`: the autograder zip Gradescope asks for — setup.sh and run_autograder at its root, and
minilab's Python source (pure NumPy: no compiled kernels, nothing to build on Gradescope's image)."""
import os
import stat
import zipfile
from importlib import resources

import minilab

SKIPPED_SUFFIXES = (".pyc", ".so", ".pyd", ".c", ".o")


def build_zip(path):
    """Write the zip to `path`; return the number of files in it."""
    package = os.path.dirname(os.path.abspath(minilab.__file__))
    count = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("setup.sh", "run_autograder"):
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o755) << 16     # Gradescope runs both as programs
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, resources.files("minilab.course").joinpath("gradescope", name).read_bytes())
            count += 1
        for folder, dirs, files in os.walk(package):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(SKIPPED_SUFFIXES):
                    continue
                full = os.path.join(folder, name)
                zf.write(full, os.path.join("minilab", os.path.relpath(full, package)))
                count += 1
    return count
