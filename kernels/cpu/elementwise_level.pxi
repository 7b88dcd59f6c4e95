# The elementwise-level setter and getter of a kernel module whose loops are compiled per
# instruction set (FNN_MULTIVERSION, activation_loops.h): included by each such module,
# since every module has its own copy of the level (elementwise_level.h).

from elementwise_level cimport fnn_get_elementwise_level, fnn_set_elementwise_level


def set_elementwise_level(int level):
    """Run this module's elementwise loops at instruction-set level ``level`` (0 base,
    1 AVX2, 2 AVX-512; capped at what the CPU executes): fastnn/_isa.py's "elementwise"
    family sets every module's (elementwise_level.h)."""
    fnn_set_elementwise_level(level)


def elementwise_level():
    """The level this module's elementwise loops are set to run at."""
    return fnn_get_elementwise_level()
