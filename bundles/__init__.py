"""OPA bundles from Git: build, sign, publish and serve."""
