/* Unaligned loads and stores of one VEC, shared by the kernel bodies that isa_instances.h
 * (or a family's scalar pass) compiles once per element type and instruction set.
 *
 * VEC is whatever the including pass defines when the macro is expanded: a GCC vector, or
 * T itself in a scalar pass.  Through memcpy of a local, each is one (unaligned) load or
 * store once optimised, and the arrays the kernels keep their accumulators in never have
 * their address taken, so they stay in registers. */
#ifndef FNN_VEC_IO_H
#define FNN_VEC_IO_H

#define FNN_VLOAD(dst, src)                                                                \
    do {                                                                                   \
        VEC fnn_vload_;                                                                    \
        __builtin_memcpy(&fnn_vload_, (src), sizeof(VEC));                                 \
        (dst) = fnn_vload_;                                                                \
    } while (0)

#define FNN_VSTORE(dst, src)                                                               \
    do {                                                                                   \
        VEC fnn_vstore_ = (src);                                                           \
        __builtin_memcpy((dst), &fnn_vstore_, sizeof(VEC));                                \
    } while (0)

#endif /* FNN_VEC_IO_H */
