/* One instruction-set level of isa_instances.h: the body FNN_ISA_BODY compiled for float
 * and for double with FNN_ISA_BYTES-byte vectors; the level's macros (FNN_ISA_LEVEL,
 * FNN_ISA_LEVEL_UC, FNN_ISA_BYTES, TARGET_ATTR) are undefined at the end. */
/* prefix + f32_base, f64_avx2, ... (the type and level of this pass) */
#define FNN_ISA_NAME(prefix)                                                              \
    FNN_ISA_CAT(FNN_ISA_CAT(prefix, FNN_ISA_TYPE), FNN_ISA_CAT(_, FNN_ISA_LEVEL))
#define VEC FNN_ISA_NAME(fnn_isa_)
#define IVEC FNN_ISA_NAME(fnn_isa_mask_)
#define SFX FNN_ISA_NAME()

#define T float
#define FNN_ISA_TYPE f32
#define VL (FNN_ISA_BYTES / 4)
#include FNN_ISA_BODY
#undef T
#undef FNN_ISA_TYPE
#undef VL

#define T double
#define FNN_ISA_TYPE f64
#define VL (FNN_ISA_BYTES / 8)
#include FNN_ISA_BODY
#undef T
#undef FNN_ISA_TYPE
#undef VL

#undef VEC
#undef IVEC
#undef SFX
#undef FNN_ISA_NAME
#undef FNN_ISA_LEVEL
#undef FNN_ISA_LEVEL_UC
#undef FNN_ISA_BYTES
#undef TARGET_ATTR
