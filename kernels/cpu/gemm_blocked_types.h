/* gemm_blocked_impl.h for float and for double at one variant: gemm_blocked.h defines
 * FNN_GEMM_LEVEL (generic, wide, avx2 or avx512) and includes this file, which takes the
 * variant's target attribute, vector bytes and n block from gemm_blocked.h's tables
 * (FNN_GEMM_ATTR_<level>, FNN_GEMM_VBYTES_<level>, FNN_GEMM_NC_<level>) and the m block
 * of each type from FNN_GEMM_MC_<f32|f64>; the register tile (FNN_MR x FNN_NV vectors)
 * and the k block are gemm_blocked.h's too.  FNN_GEMM_LEVEL is undefined at the end. */
#define FNN_GEMM_CAT_(a, b) a##b
#define FNN_GEMM_CAT(a, b) FNN_GEMM_CAT_(a, b)
#define FNN_ATTR FNN_GEMM_CAT(FNN_GEMM_ATTR_, FNN_GEMM_LEVEL)
#define FNN_VBYTES FNN_GEMM_CAT(FNN_GEMM_VBYTES_, FNN_GEMM_LEVEL)
#define FNN_NC FNN_GEMM_CAT(FNN_GEMM_NC_, FNN_GEMM_LEVEL)
#define FNN_MC FNN_GEMM_CAT(FNN_GEMM_MC_, FNN_M)
#define FNN_SFX FNN_GEMM_CAT(FNN_M, FNN_GEMM_CAT(_, FNN_GEMM_LEVEL))

#define FNN_T float
#define FNN_M f32
#define FNN_VL_NUM (FNN_VBYTES / 4) /* lanes, for #if (gemm_mapped_impl.h) */
#include "gemm_blocked_impl.h"
#undef FNN_T
#undef FNN_M
#undef FNN_VL_NUM

#define FNN_T double
#define FNN_M f64
#define FNN_VL_NUM (FNN_VBYTES / 8)
#include "gemm_blocked_impl.h"
#undef FNN_T
#undef FNN_M
#undef FNN_VL_NUM

#undef FNN_ATTR
#undef FNN_VBYTES
#undef FNN_NC
#undef FNN_MC
#undef FNN_SFX
#undef FNN_GEMM_LEVEL
