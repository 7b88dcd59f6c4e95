"""Tests of fastnn.nn, fastnn.optim, fastnn.init and the example trainers."""
