"""fastnn's compiled and device kernels (installed as ``fastnn.kernels``)."""
