"""The installed version of fastnn (from the package metadata; pyproject.toml is the source)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fastnn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
