# Declarations of fastnn's blocked GEMM (gemm_blocked.h) for the modules that call it:
# gemm.pyx (the dense ops' engine), gemm_engine.pxd (the GEMMs inside other kernels) and
# conv_pointwise.pyx (the mapped GEMM of gemm_mapped.h).

cdef extern from "gemm_blocked.h" nogil:
    double fnn_gemm_flops_per_thread
    Py_ssize_t fnn_gemm_short_k
    double fnn_gemm_t48_time
    double fnn_gemm_llc_bytes
    double fnn_gemm_b_block_bytes
    Py_ssize_t fnn_gemm_few_prefetch
    Py_ssize_t fnn_gemm_narrow_t_n
    ctypedef struct fnn_epilogue:
        int act
        int derivative
        const void* bias
        const void* u
        Py_ssize_t ldu

    ctypedef struct fnn_gemm_args:
        Py_ssize_t m, n, k
        const void* a
        Py_ssize_t a_rs, a_cs
        const void* b
        Py_ssize_t b_rs, b_cs
        const void* c
        Py_ssize_t c_rs, c_cs
        double alpha, beta
        void* out
        Py_ssize_t ldo
        fnn_epilogue epi
        int accumulate

    int fnn_gemm_f32(const fnn_gemm_args* g, int num_threads, int variant)
    int fnn_gemm_f64(const fnn_gemm_args* g, int num_threads, int variant)
    void fnn_epilogue_f32(const fnn_epilogue* e, float* out, Py_ssize_t m, Py_ssize_t n,
                          Py_ssize_t ldo, int num_threads)
    void fnn_epilogue_f64(const fnn_epilogue* e, double* out, Py_ssize_t m, Py_ssize_t n,
                          Py_ssize_t ldo, int num_threads)
    ctypedef struct fnn_index_map:
        Py_ssize_t n1, n2, s1, s2, s3

    ctypedef struct fnn_gemm_mapped_args:
        Py_ssize_t m, n, k
        const void* a
        Py_ssize_t a_rs
        fnn_index_map a_k
        const void* b
        fnn_index_map b_k, b_n
        void* out
        Py_ssize_t ldo
        fnn_index_map o_n
        const void* bias
        int act
        int accumulate
        size_t l2_bytes

    fnn_index_map fnn_map_affine(Py_ssize_t stride)
    fnn_index_map fnn_map_make(Py_ssize_t n1, Py_ssize_t n2, Py_ssize_t s1, Py_ssize_t s2,
                               Py_ssize_t s3)
    int fnn_gemm_mapped_f32(const fnn_gemm_mapped_args* g, int num_threads, int variant)
    int fnn_gemm_mapped_f64(const fnn_gemm_mapped_args* g, int num_threads, int variant)
    int fnn_gemm_variant(int requested)
    int FNN_GEMM_AUTO, FNN_GEMM_GENERIC, FNN_GEMM_AVX2, FNN_GEMM_AVX512
    int FNN_GEMM_WIDE_GENERIC, FNN_GEMM_AVX512_T32, FNN_GEMM_AVX512_T48
