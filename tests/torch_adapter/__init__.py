"""Tests of fastnn.torch: functions, modules, patching whole models, torch.compile."""
