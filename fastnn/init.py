"""fastnn.init: weight initialisers (Xavier, Kaiming, uniform, normal) and the default
generator.  They live in :mod:`fastnn.nn.init`; this module re-exports them so that
``fastnn.init.xavier_uniform`` keeps working."""

from fastnn.nn.init import (
    as_generator,
    calculate_gain,
    fans,
    kaiming_normal,
    kaiming_uniform,
    manual_seed,
    normal,
    uniform,
    xavier_normal,
    xavier_uniform,
    zeros,
)

__all__ = [
    "as_generator",
    "calculate_gain",
    "fans",
    "kaiming_normal",
    "kaiming_uniform",
    "manual_seed",
    "normal",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]
