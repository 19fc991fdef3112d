"""The one place that builds Kubernetes objects (DESIGN.md): shared conventions in common.py."""
