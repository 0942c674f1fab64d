"""dubbing_pipeline: an AI video-localization pipeline orchestrated by Dagster."""

__version__ = "0.1.0"
