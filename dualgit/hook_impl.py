"""Placeholder replaced by the hooks work."""
