"""Print what a CI run used: Python and the packages the tests load, the C compiler, the CPU and its vector
flags.  A run that turns red on a new NumPy or another CPU then says what changed."""
import importlib.metadata
import platform
import subprocess

PACKAGES = ["numpy", "Cython", "pillow", "hypothesis", "pytest", "mpi4py", "mpich", "matplotlib", "tqdm"]
VECTOR_FLAGS = ("popcnt", "sse4", "avx", "fma", "bmi2", "asimd", "sve")


BUILD_ONLY = {"Cython"}   # pip builds the kernels in an isolated environment, which the run does not keep


def version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "(build-time only)" if name in BUILD_ONLY else "not installed"


def cpu():
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = fields.get("flags", fields.get("Features", "")).split()
    name = fields.get("model name") or platform.processor() or platform.machine()
    family = f"family {fields['cpu family']} model {fields['model']}" if "cpu family" in fields else ""
    return name, family, [f for f in flags if f.startswith(VECTOR_FLAGS)]


print("Python", platform.python_version(), "on", platform.machine())
print("packages:", ", ".join(f"{name} {version(name)}" for name in PACKAGES))
try:
    print("compiler:", subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[0])
except (OSError, IndexError):
    print("compiler: none found")
name, family, flags = cpu()
print("CPU:", name, family)
print("vector flags:", " ".join(flags) or "none")
