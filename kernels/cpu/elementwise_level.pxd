# The level the elementwise loops of a kernel module run at (elementwise_level.h).

cdef extern from "elementwise_level.h" nogil:
    void fnn_set_elementwise_level(int level)
    int fnn_get_elementwise_level()
