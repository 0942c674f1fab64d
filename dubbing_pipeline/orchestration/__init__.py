"""Dagster wiring shared by every stage: partitions, resources, the record IO manager."""
