"""credit-zoo: a plugin-based model zoo for credit-default prediction on tabular data."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("credit-zoo")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
