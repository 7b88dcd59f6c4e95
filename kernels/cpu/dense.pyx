# Reductions for the dense layer's gradients: column sums (the bias gradient, BP3).
cimport numpy as cnp

cimport dense_arrays as da

cnp.import_array()

cdef extern from "dense_reduce.h" nogil:
    int fnn_column_sums_f32(const float* x, Py_ssize_t m, Py_ssize_t n, float* out,
                            int threads)
    int fnn_column_sums_f64(const double* x, Py_ssize_t m, Py_ssize_t n, double* out,
                            int threads)


def column_sums(x, int num_threads):
    """A new (n,) array: the sum over the rows of the 2-d (m, n) x, accumulated in double."""
    cdef cnp.ndarray xc = da.carray(x)
    if cnp.PyArray_NDIM(xc) != 2:
        raise ValueError("column_sums: x must be 2-d")
    cdef Py_ssize_t m = cnp.PyArray_DIM(xc, 0), n = cnp.PyArray_DIM(xc, 1)
    cdef int typenum = cnp.PyArray_TYPE(xc), status
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(1, dims, typenum, 0)
    cdef void* xp = cnp.PyArray_DATA(xc)
    cdef void* op = cnp.PyArray_DATA(out)
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            status = fnn_column_sums_f32(<const float*>xp, m, n, <float*>op, num_threads)
        else:
            status = fnn_column_sums_f64(<const double*>xp, m, n, <double*>op, num_threads)
    if status != 0:
        raise MemoryError("column_sums: out of memory")
    return out
