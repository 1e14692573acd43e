"""edgepolicy: policy-as-code admission control for AI workloads on edge Kubernetes clusters."""

from importlib import metadata


def package_version() -> str:
    """The version of the installed edgepolicy distribution (its package metadata), or
    ``0+unknown`` when running from a source tree that was never installed."""
    try:
        return metadata.version("edgepolicy")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = package_version()
