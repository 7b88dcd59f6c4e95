"""Cython CPU kernels: ``cdef ... noexcept nogil`` routines behind thin ``def`` wrappers.

The wrappers trust their arguments: fastnn.ops validates everything first."""
