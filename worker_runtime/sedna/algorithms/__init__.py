"""Algorithms used by the edge-cloud features: hard example mining, aggregation, compression."""
