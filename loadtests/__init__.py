"""Locustfiles, load shapes, scenarios, collectors and thresholds."""
