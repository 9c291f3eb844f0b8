/* How the kernels' `schedule="runtime"` loops share their items (share_loop in kernels.pyx): OpenMP's run-time
 * schedule, set by the calling thread before each loop.  A build without OpenMP runs every loop on one thread and
 * has nothing to set (nor a libgomp to call). */
#ifndef MINILAB_LOOP_SCHEDULE_H
#define MINILAB_LOOP_SCHEDULE_H

#ifdef _OPENMP
#include <omp.h>

static inline void set_loop_schedule(int static_split, int chunk) {
    if (static_split)
        omp_set_schedule(omp_sched_static, 0);      /* 0: one contiguous share per thread */
    else
        omp_set_schedule(omp_sched_dynamic, chunk);
}
#else
static inline void set_loop_schedule(int static_split, int chunk) {
    (void)static_split;
    (void)chunk;
}
#endif

#endif
