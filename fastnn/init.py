"""fastnn.init: weight initialisers (Xavier, Kaiming, uniform, normal) and the default
generator.  They live in :mod:`fastnn.nn.init`; this module re-exports them so that
``fastnn.init.xavier_uniform`` keeps working."""

from fastnn.nn.init import *  # noqa: F403  (the public names; the list is nn.init.__all__)
from fastnn.nn.init import __all__  # noqa: F401
