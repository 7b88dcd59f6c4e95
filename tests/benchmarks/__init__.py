"""Tests of fastnn.bench: timing, cases, tables, the report and plots."""
