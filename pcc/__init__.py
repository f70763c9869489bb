"""pcc: automatic cranial implant design by point-cloud completion."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pcc")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
