"""Tests of fastnn.jax: functions under jit, grad and vmap against XLA."""
