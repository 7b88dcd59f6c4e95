"""Tests of the public surface: dispatch, errors, properties, the CLI, README and lint."""
