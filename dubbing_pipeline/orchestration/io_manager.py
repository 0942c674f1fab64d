"""Asset and step outputs are small JSON records (URIs, numbers, text), never media, never pickles.

They are stored in the media storage itself, so the embedded default (a directory) and
production (S3, one pod per step) share one mechanism.
"""

from typing import Any

import dagster as dg

from dubbing_pipeline.ids import join_key, partition_key_parts, sanitize_id
from dubbing_pipeline.orchestration.resources import StorageResource


def _asset_key_parts(context: dg.OutputContext | dg.InputContext) -> list[str]:
    return [sanitize_id(p) for p in context.asset_key.path]


class RecordIOManager(dg.ConfigurableIOManager):
    storage: dg.ResourceDependency[StorageResource]

    def _key(self, context: dg.OutputContext) -> str:
        if context.has_asset_key:
            parts = ["records", *_asset_key_parts(context)]
            if context.has_asset_partitions:
                parts += partition_key_parts(context.asset_partition_key)
            return join_key(*parts) + ".json"
        ident = [sanitize_id(p) for p in context.get_identifier()]
        return join_key("records", "steps", *ident) + ".json"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        self.storage.get().put_json(self._key(context), obj)

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        if upstream is None:
            raise dg.DagsterInvariantViolationError("record inputs need an upstream output")
        if context.has_asset_key and context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) == 1:
                parts = ["records", *_asset_key_parts(context), *partition_key_parts(keys[0])]
                return self.storage.get().get_json(join_key(*parts) + ".json")
        return self.storage.get().get_json(self._key(upstream))


def record_key(asset: str, partition_key: str) -> str:
    """The storage key of an asset's record for one partition."""
    return join_key("records", sanitize_id(asset), *partition_key_parts(partition_key)) + ".json"


def load_asset_record(storage: Any, asset: str, partition_key: str) -> Any:
    """Read an asset's stored record outside Dagster (CLI, reports)."""
    return storage.get_json(record_key(asset, partition_key))
