"""Asset and step outputs are small JSON records (URIs, numbers, text), never media, never pickles.

They are stored in the media storage itself, so the embedded default (a directory) and
production (S3, one pod per step) share one mechanism. A typed record (``records.Record``) is
converted here and nowhere else in a run: to JSON on output, and back to the type the consuming
asset or op declares on input.
"""

import typing
from typing import Any, TypeVar

import dagster as dg

from dubbing_pipeline.common.ids import join_key, partition_key_parts, sanitize_id
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.records import JsonObject, Record
from dubbing_pipeline.storage import MediaStorage

R = TypeVar("R", bound=Record)


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
        self.storage.get().put_json(self._key(context), obj.to_json() if isinstance(obj, Record) else obj)

    def load_input(self, context: dg.InputContext) -> Any:
        return as_declared(context, self._load(context))

    def _load(self, context: dg.InputContext) -> JsonObject:
        upstream = context.upstream_output
        if upstream is None:
            raise dg.DagsterInvariantViolationError("record inputs need an upstream output")
        if context.has_asset_key and context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) == 1:
                parts = ["records", *_asset_key_parts(context), *partition_key_parts(keys[0])]
                return _json(self.storage.get(), join_key(*parts) + ".json")
        return _json(self.storage.get(), self._key(upstream))


def _json(storage: MediaStorage, key: str) -> JsonObject:
    stored: JsonObject = storage.get_json(key)
    return stored


def record_key(asset: str, partition_key: str) -> str:
    """The storage key of an asset's record for one partition."""
    return join_key("records", sanitize_id(asset), *partition_key_parts(partition_key)) + ".json"


def load_asset_record(storage: MediaStorage, asset: str, partition_key: str) -> Any:
    """Read an asset's stored record outside Dagster (CLI, reports), as stored (:func:`load_record`
    reads it as its typed record)."""
    return _json(storage, record_key(asset, partition_key))


def as_declared(context: dg.InputContext, stored: Any) -> Any:
    """``stored`` as the record type the input declares, or as stored where it declares none.

    A fan-in input declared ``list[SomeRecord]`` is loaded one upstream output at a time, each
    with the list's declared type: each item becomes a ``SomeRecord``."""
    wanted = context.dagster_type.typing_type
    if isinstance(wanted, type) and issubclass(wanted, Record):
        return wanted.from_json(stored)
    args = typing.get_args(wanted)
    if (
        typing.get_origin(wanted) is list
        and args
        and isinstance(args[0], type)
        and issubclass(args[0], Record)
    ):
        item: type[Record] = args[0]
        return [item.from_json(x) for x in stored] if isinstance(stored, list) else item.from_json(stored)
    return stored


def load_record(storage: MediaStorage, asset: str, partition_key: str, record: type[R]) -> R:
    """An asset's stored record as its typed ``record``, outside Dagster (CLI, reports)."""
    return record.from_json(load_asset_record(storage, asset, partition_key))
