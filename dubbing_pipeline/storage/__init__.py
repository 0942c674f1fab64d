"""Media storage: where every artifact of the pipeline lives (local directory or S3)."""

from dubbing_pipeline.storage.base import MediaStorage, WriteConflict, parse_uri, update_json
from dubbing_pipeline.storage.factory import make_storage, s3_service
from dubbing_pipeline.storage.local import LocalStorage

__all__ = [
    "LocalStorage",
    "MediaStorage",
    "WriteConflict",
    "make_storage",
    "parse_uri",
    "s3_service",
    "update_json",
]
