"""edgepolicy: policy-as-code admission control for AI workloads on edge Kubernetes clusters."""

__version__ = "0.1.0"
