"""pytest-benchmark suites of fastnn against its peers (see README.md)."""
