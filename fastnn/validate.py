"""Argument validation with fastnn's error rules, for code built on fastnn (fastnn.nn,
fastnn.optim, user layers): ``TypeError`` for a wrong type, ``ValueError`` for a wrong value,
and every message starts with the caller's name (``op``) and names the argument.

The public ops run these same checks before any kernel; they are exported here so that
layers and optimizers fail the same way, when they are built, without reaching into
fastnn's private modules.
"""

from fastnn._args import (
    FLOAT_DTYPES,
    activation_name,
    check_bool,
    check_scalar,
    float_arrays,
    int_tuple,
    reduction_name,
)

__all__ = [
    "FLOAT_DTYPES",
    "activation_name",
    "check_bool",
    "check_scalar",
    "float_arrays",
    "int_tuple",
    "reduction_name",
]
