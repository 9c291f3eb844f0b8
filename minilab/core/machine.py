"""What this machine gives a minilab run, and the defaults that follow from it.

    usable_cores()     the cores this process may run on: its CPU affinity, capped by a cgroup CPU quota
    default_threads()  the kernels' thread count when --threads is not given: the usable cores shared among the
                       MPI ranks on this node and the data loader's worker processes, at least 1, so that a
                       default run never puts two busy threads on one core
    choose_kernels()   which compiled kernel module to load: the best one built that this CPU runs (cpuid)
    info()             `python -c "import minilab; minilab.info()"`: the CPU, the kernel variant chosen for it,
                       the cores, the OpenMP wait policy and the BLAS, printed (and returned as a dict)

Oversubscription is what makes threads slow on a shared machine: an OpenMP loop waits for its slowest thread, and
a thread that shares its core with another busy thread is the slowest by a factor of two or more."""
import importlib.util
import math
import os
import platform


def affinity_cores():
    """How many CPUs the scheduler lets this process use (taskset, cpuset, a batch system's binding)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cgroup_v2_limit(path, root):
    """cores allowed by cpu.max along a cgroup v2 path (the tightest of it and its parents), or None"""
    limit = None
    while True:
        try:
            with open(os.path.join(root, path.lstrip("/"), "cpu.max")) as f:
                quota, period = f.read().split()[:2]
            if quota != "max":
                cores = int(quota) / int(period)
                limit = cores if limit is None else min(limit, cores)
        except (OSError, ValueError):
            pass
        if path in ("", "/"):
            return limit
        path = os.path.dirname(path.rstrip("/"))


def _cgroup_v1_limit(path, root):
    """cores allowed by cpu.cfs_quota_us / cpu.cfs_period_us of a cgroup v1 cpu controller, or None"""
    for controller in (os.path.join(root, "cpu,cpuacct"), os.path.join(root, "cpu")):
        for folder in (os.path.join(controller, path.lstrip("/")), controller):
            try:
                with open(os.path.join(folder, "cpu.cfs_quota_us")) as f:
                    quota = int(f.read())
                with open(os.path.join(folder, "cpu.cfs_period_us")) as f:
                    period = int(f.read())
            except (OSError, ValueError):
                continue
            return quota / period if quota > 0 and period > 0 else None
    return None


def cgroup_quota(cgroup_file="/proc/self/cgroup", root="/sys/fs/cgroup"):
    """The CPU time this process' control group may use, in cores (a container's --cpus, a systemd CPUQuota=),
    or None when there is no limit or no cgroup to read.  (The arguments are where Linux keeps them.)"""
    try:
        with open(cgroup_file) as f:
            lines = [line.strip().split(":", 2) for line in f if line.strip()]
    except OSError:
        return None
    for hierarchy, controllers, path in lines:
        limit = _cgroup_v2_limit(path, root) if hierarchy == "0" and controllers == "" else None
        if limit is not None:
            return limit
    for _, controllers, path in lines:
        if "cpu" in controllers.split(","):
            return _cgroup_v1_limit(path, root)
    return None


def usable_cores():
    """(cores, how they were found): the affinity, capped by a cgroup quota rounded down (at least 1)."""
    cores = affinity_cores()
    quota = cgroup_quota()
    if quota is not None and math.floor(quota) < cores:
        return max(1, math.floor(quota)), f"cgroup CPU quota {quota:g} of {cores} CPUs in this process' affinity"
    return cores, f"{cores} CPU{'s' if cores != 1 else ''} in this process' affinity" + \
        ("" if quota is None else f" (cgroup quota {quota:g})")


def default_threads(ranks_on_node=1, workers=0):
    """(threads, one line saying why): the usable cores divided among the `ranks_on_node` MPI ranks that share
    this node, less this rank's `workers` loader processes (each may keep a core busy), at least 1."""
    cores, found = usable_cores()
    share = cores // max(1, ranks_on_node)
    threads = max(1, share - max(0, workers))
    why = f"{found}"
    if ranks_on_node > 1:
        why += f", shared by {ranks_on_node} MPI ranks on this node"
    if workers > 0:
        why += f", less {workers} loader worker{'s' if workers != 1 else ''}"
    return threads, f"threads {threads} ({why}; --threads overrides)"


KERNEL_VARIANTS = ("native", "avx512", "avx2", "neon", "portable")   # preferred first
VARIANT_NAMES = {"native": "this machine's own instructions (MINILAB_NATIVE=1 build)",
                 "avx512": "AVX-512 VPOPCNTDQ (x86-64-v4)", "avx2": "AVX2 (x86-64-v3)", "neon": "NEON (ARM64)",
                 "portable": "portable C"}


def kernels_built():
    """The variants this installation has, preferred first."""
    return [v for v in KERNEL_VARIANTS if importlib.util.find_spec(f"minilab._kernels_{v}") is not None]


def cpu_runs(variant):
    """Whether this CPU can run `variant` (the CPU's own report; a native build is trusted to match)."""
    machine = platform.machine().lower()
    x86 = machine in ("x86_64", "amd64")
    if variant == "native":
        return True
    if variant == "neon":
        return machine in ("aarch64", "arm64")
    if variant == "portable":
        if not x86:
            return True
        return cpu_features()["popcnt"]
    if not x86:
        return False
    return cpu_features()[variant]


def cpu_features():
    """What cpuid says this x86-64 CPU can run (`minilab._cpu`, built with baseline flags so that it runs
    anywhere): {"popcnt": …, "avx2": …, "avx512": …}."""
    return importlib.import_module("minilab._cpu").supports()


def choose_kernels(forced=None):
    """(variant, why, variants built): the compiled kernel module to load (`minilab/_kernels.py` loads it), or
    (None, one line saying why none can be, …).  `forced` is MINILAB_ISA's value."""
    have = kernels_built()
    if not have:
        return None, "no compiled kernel module is built (run `pip install -e .`)", have
    if forced:
        if forced not in KERNEL_VARIANTS:
            return None, f"MINILAB_ISA={forced} is not one of {', '.join(KERNEL_VARIANTS)}", have
        if forced not in have:
            return None, f"MINILAB_ISA={forced}: this build has no such module (built: {', '.join(have)})", have
        if not cpu_runs(forced):
            can = [v for v in have if cpu_runs(v)]
            return None, (f"MINILAB_ISA={forced}: this CPU cannot run {VARIANT_NAMES[forced]} "
                          f"(it can run: {', '.join(can) or 'none of the built modules'})"), have
        return forced, "forced by MINILAB_ISA", have
    for variant in have:
        if cpu_runs(variant):
            return variant, ("the best this CPU supports" if variant != "native" else "the native build"), have
    return None, (f"this CPU can run none of the built kernel modules ({', '.join(have)}); "
                  "an x86-64 CPU without POPCNT needs a build with MINILAB_NO_POPCNT=1"), have



WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


# How long an idle OpenMP thread spins before it sleeps, in libgomp's spin iterations (about a microsecond here).
# Long enough to bridge the gap between two parallel loops of one layer or of two layers back to back (the packed
# engine runs ~60 short loops per image: threads that sleep at once make two threads slower than one); short enough
# that a thread waiting for a core another process took gives that core back almost at once.  libgomp's own
# default spins 300,000 iterations, which beside a busy process costs a training step several times its time.
SPIN_ITERATIONS = 1000


def set_wait_policy(one_pool=True, latency=False):
    """Choose how idle OpenMP threads wait, unless the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT set).

    With one pool of threads (the kernels run the GEMMs too) idle threads spin briefly, then sleep
    (GOMP_SPINCOUNT=SPIN_ITERATIONS).  With two pools taking turns (the kernels' OpenMP threads between BLAS'
    GEMMs, `one_pool=False`) they sleep at once (OMP_WAIT_POLICY=PASSIVE): a spinning OpenMP thread would keep
    a core from the BLAS thread that needs it.  A process that runs one image at a time (`latency=True`, one
    pool: `config.for_latency`) keeps libgomp's own long spin: between two of a forward pass' short loops the
    threads stay awake, and a forward's Python steps between layers are longer than a brief spin.  libgomp reads
    these variables once, when it is loaded, so `config.load` calls this before loading the kernels.  Returns
    True when it set the policy."""
    if any(name in os.environ for name in WAIT_VARIABLES):
        return False
    if not one_pool:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    elif latency:
        return False
    else:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_ITERATIONS)
    return True


def cpu_name():
    """The processor's model name and core count, for every figure or table that reports a timing (Linux'
    /proc/cpuinfo; the platform's word for it elsewhere).  A virtual machine's model name can be terse, so the
    x86 family and model numbers are added where the CPU reports them."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    name = (fields.get("model name") or fields.get("cpu model") or fields.get("hardware") or platform.processor()
            or platform.machine())
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return f"{name}, {os.cpu_count()} cores"
