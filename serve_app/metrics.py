"""Shared histogram buckets (milliseconds) so dashboards line up across deployments."""

LATENCY_BOUNDS_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 250, 1000]
