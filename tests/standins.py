"""Stand-in assets for orchestration tests: the real graph's shape, the real stage kit, no media work.

Each stand-in has the real asset's key, partitions definition, code version and parents; it
returns a record whose cache key chains its parents' keys (and a per-partition ``salt`` a test
changes to make "the data changed"), through the same :func:`stage_output` every stage uses. A
real Dagster run of stand-ins writes exactly what a real run of the pipeline writes for the catalog
to read — which hand-made event tags cannot promise.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from dubbing_pipeline.common.hashing import cache_key
from dubbing_pipeline.orchestration.fresh import UNOBSERVED
from dubbing_pipeline.orchestration.kit import stage_output
from dubbing_pipeline.orchestration.registry import lookup_video
from dubbing_pipeline.storage import MediaStorage


class StandIns:
    """Stand-ins for every asset of ``graph``; ``salt[(asset, partition)]`` changes an output."""

    def __init__(
        self,
        graph: Any,
        storage: MediaStorage,
        io_dir: Path,
        code_versions: Mapping[str, str] | None = None,
    ) -> None:
        self.graph = graph
        self.storage = storage
        self.io_dir = io_dir
        self.salt: dict[tuple[str, str], str] = {}
        self.code_versions = dict(code_versions or {})
        keys = graph.get_all_asset_keys()
        self.assets = [self._build(key) for key in keys if graph.get(key).is_materializable]

    def _code(self, name: str, key: dg.AssetKey) -> str:
        return self.code_versions.get(name) or str(self.graph.get(key).code_version)

    def _build(self, key: dg.AssetKey) -> dg.AssetsDefinition:
        node = self.graph.get(key)
        name = key.to_user_string()
        parents = sorted(p.to_user_string() for p in node.parent_keys if self.graph.get(p).is_materializable)
        # observed sources (edits, feedback): their observed version is part of the lineage, as in the
        # real stages; never observed here, so the version of none
        sources = sorted(
            p.to_user_string() for p in node.parent_keys if not self.graph.get(p).is_materializable
        )
        code = self._code(name, key)

        @dg.asset(
            name=name,
            partitions_def=node.partitions_def,
            code_version=code,
            ins={p: dg.AssetIn(key=p) for p in parents},
            deps=sources,
        )
        def _stand_in(context, **upstream):  # type: ignore[no-untyped-def]
            pk = str(context.partition_key)
            if not parents:  # the root: made from the registered source object version
                entry = lookup_video(self.storage, pk)
                upstream = {"source": {"cache_key": entry.get("fingerprint") or entry["source_uri"]}}
            upstream = {**upstream, **{p: {"cache_key": UNOBSERVED[p]} for p in sources}}
            salt = self.salt.get((name, pk), "1")
            key_ = cache_key(name, salt=salt, code=code, up={p: r["cache_key"] for p, r in upstream.items()})
            return stage_output(
                {"cache_key": key_, "partition": pk},
                upstream=upstream,
                code_version=code,
                seconds=0.0,
                cached=False,
                media_seconds=1.0,
            )

        return _stand_in

    def assets_graph(self) -> Any:
        """The stand-ins' own graph (for a test that changes a code version)."""
        from dubbing_pipeline.orchestration.feedback_asset import feedback
        from dubbing_pipeline.orchestration.resources import storage_resource
        from dubbing_pipeline.settings import Settings
        from dubbing_pipeline.translation.edits_asset import edits

        # only resolved, never run
        storage = storage_resource(Settings(storage_url=str(self.io_dir / "media")))
        return dg.Definitions(
            assets=[*self.assets, edits, feedback], resources={"storage": storage}
        ).resolve_asset_graph()

    def materialise(self, instance: dg.DagsterInstance, half: tuple[str, ...], pk: str) -> None:
        """One real run of the stand-ins of ``half`` for partition ``pk`` (parents loaded from disk)."""
        selection = [a for a in self.assets if a.key.to_user_string() in half]
        result = dg.materialize(
            self.assets,
            selection=selection,
            partition_key=pk,
            instance=instance,
            resources={"io_manager": dg.FilesystemIOManager(base_dir=str(self.io_dir))},
        )
        assert result.success
