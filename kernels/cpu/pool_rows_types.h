/* pool_rows_impl.h for float and for double at the level POOL_ISA, which pool_rows.h
 * defines before including this file (and its target pragmas around it); POOL_ISA is
 * undefined at the end. */
#define T float
#define POOL_SFX f32
#include "pool_rows_impl.h"
#undef T
#undef POOL_SFX

#define T double
#define POOL_SFX f64
#include "pool_rows_impl.h"
#undef T
#undef POOL_SFX

#undef POOL_ISA
