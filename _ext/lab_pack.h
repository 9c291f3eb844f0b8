/* Chooses the fused LAB binarize-and-pack this build compiles (lab_pack/portable.h explains the maths and is
 * the one to read first).  Each header defines lab_pack_rows with the same arguments and the same bits. */
#ifndef MINILAB_LAB_PACK_H
#define MINILAB_LAB_PACK_H

#if defined(MINILAB_PORTABLE)
#include "lab_pack/portable.h"
#elif defined(__AVX512F__)
#include "lab_pack/avx512.h"
#elif defined(__aarch64__)
#include "lab_pack/neon.h"
#else
#include "lab_pack/portable.h"
#endif

#endif
