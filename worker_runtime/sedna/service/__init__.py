"""Upstream Sedna's service modules: ``sedna.service.server`` and ``sedna.service.client``."""
