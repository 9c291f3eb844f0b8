"""`minilab.info()`: what minilab uses on this machine — the CPU, the compiled kernel variant chosen for it and why,
the usable cores and the default thread count, the OpenMP wait policy and the BLAS."""
import os
import platform

from . import config
from .machine import WAIT_VARIABLES, cpu_name, default_threads, usable_cores


def info(file=None):
    """Print what minilab uses on this machine, and return it as a dict."""
    report = {"cpu": cpu_name(), "machine": platform.machine()}
    ext = config.kernels()
    if ext is not None:
        report.update(kernels=ext.variant, kernels_reason=ext.variant_reason, kernels_built=ext.variants_built,
                      popcount=ext.isa())
    else:
        report.update(kernels=None, kernels_reason=config.reason())
    cores, found = usable_cores()
    threads, why = default_threads()
    report.update(cores=cores, cores_found=found, default_threads=threads, threads=config.threads,
                  wait_policy={name: os.environ.get(name) for name in WAIT_VARIABLES},
                  wait_policy_by_minilab=config.wait_policy_set,
                  loops="static" if ext is not None and ext.loops_split_statically() else "dynamic")
    from threadpoolctl import threadpool_info   # a dependency of minilab's (core/blas.py)
    report["blas"] = [{k: pool.get(k) for k in ("internal_api", "num_threads", "version", "architecture")}
                      for pool in threadpool_info() if pool.get("user_api") == "blas"]
    policy = (", ".join(f"{k}={v}" for k, v in report["wait_policy"].items() if v is not None)
              or "libgomp's default (idle threads spin long)")
    lines = [f"CPU:      {report['cpu']} ({report['machine']})",
             f"kernels:  {report['kernels'] or 'none: ' + report['kernels_reason']}"
             + (f" — {report['kernels_reason']}; built: {', '.join(report['kernels_built'])};"
                f" popcount GEMM {report['popcount']}" if ext is not None else ""),
             f"cores:    {cores} usable ({found})",
             f"threads:  default {threads} for one process (MPI ranks and loader workers take their share); "
             f"now {config.threads}",
             f"OpenMP:   wait policy {policy}" + (" (set by minilab; set OMP_WAIT_POLICY to choose)"
                                                  if config.wait_policy_set else "")
             + f"; loops split {'statically' if report['loops'] == 'static' else 'in dynamic chunks'}"
             + (" (MINILAB_LOOPS)" if config.loops in config.LOOP_SCHEDULES else
                " (one image at a time: config.for_latency)" if config.latency else "")]
    from .blas import describe_blas
    report["float_gemm"] = ext.sgemm_kind() if ext is not None else None   # 'own-avx512', 'blas' or None
    report["blas_kernels"] = describe_blas(avx512_cpu=report["kernels"] == "avx512",
                                           own_gemm=ext.own_sgemm_in_use() if ext is not None else None)
    threads_now = ", ".join(f"{b['num_threads']}" for b in report["blas"])
    lines.append(f"BLAS:     {report['blas_kernels']}" + (f"; {threads_now} threads" if threads_now else ""))
    print("\n".join(lines), file=file)
    return report
