"""Shared pieces of the worker library: configuration, registries, reporting."""
