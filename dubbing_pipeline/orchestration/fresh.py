"""Missing, stale or fresh: one judgement of every asset partition, for every entry point.

The catalog tick, the CLI's unchanged run (``up_to_date``) and the tests all ask :class:`Freshness`.
It reads the latest data version of each partition (``kit.Version``: cache key, lineage digest,
code version) and compares it with what the partition would be made from now:

* the **code version** the asset has now: its code versions and its recipe's digest
  (``freshness.effective_code``: settings rows, model content, library and tool versions);
* the **lineage**: its parents' current cache keys (each parent fresh itself), and for the
  observable source assets (``edits``, ``feedback``) their latest *observed* content version against
  the version the run read;
* a dub whose blocking quality check failed is never fresh.

The graph it walks is Dagster's asset graph (the catalog) or :class:`StageGraph`, the same edges
from ``stages.PARENTS`` with the recipes' code versions, which the CLI builds without loading any
stage code (a test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, Protocol

import dagster as dg

from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.orchestration.kit import DATA_VERSION_TAG, Version, lineage_digest, lineage_of_lines
from dubbing_pipeline.orchestration.partitions import video_language, videos
from dubbing_pipeline.review.edits import NO_EDITS, edits_version
from dubbing_pipeline.review.feedback import NO_FEEDBACK
from dubbing_pipeline.stages import EDITS, FEEDBACK, OBSERVED, PARENTS, SOURCE_HALF

State = Literal["fresh", "missing", "stale"]
FRESH: Final = "fresh"
MISSING: Final = "missing"
STALE: Final = "stale"
BLOCKED = "!blocked"
"""The code-version suffix of a dub that failed a blocking check (``dubbed_video.asset.BLOCKED``)."""

UNOBSERVED: Mapping[str, str] = {EDITS: edits_version(NO_EDITS), FEEDBACK: NO_FEEDBACK}
"""What the stages read of an observable source never observed: no edits, no feedback (the data
versions ``translation.edits_asset.UNEDITED`` and ``review.feedback.NO_FEEDBACK``)."""


class AssetNode(Protocol):
    """What :class:`Freshness` reads of one asset of a graph."""

    @property
    def partitions_def(self) -> dg.PartitionsDefinition[Any] | None: ...
    @property
    def parent_keys(self) -> Set[dg.AssetKey]: ...
    @property
    def code_version(self) -> str | None: ...
    @property
    def is_materializable(self) -> bool: ...


class AssetGraph(Protocol):
    """The asset graph :class:`Freshness` walks: Dagster's (``Definitions.resolve_asset_graph()``)
    or :class:`StageGraph`."""

    def get(self, key: dg.AssetKey) -> AssetNode: ...
    def get_all_asset_keys(self) -> Set[dg.AssetKey]: ...


@dataclass(frozen=True)
class StageNode:
    """One asset of :class:`StageGraph`, with the attributes :class:`Freshness` reads."""

    key: dg.AssetKey
    partitions_def: dg.PartitionsDefinition[Any]
    parent_keys: frozenset[dg.AssetKey]
    code_version: str | None
    is_materializable: bool


class StageGraph:
    """The stages' asset graph from ``stages.PARENTS`` and the effective code versions ``codes``."""

    def __init__(self, codes: Mapping[str, str]) -> None:
        self._nodes: dict[dg.AssetKey, StageNode] = {}
        for name in OBSERVED:
            key = dg.AssetKey(name)
            self._nodes[key] = StageNode(key, video_language, frozenset(), None, False)
        for name, parents in PARENTS.items():
            key = dg.AssetKey(name)
            pdef = videos if name in SOURCE_HALF else video_language
            keys = frozenset(dg.AssetKey(p) for p in parents)
            self._nodes[key] = StageNode(key, pdef, keys, codes.get(name), True)

    def get(self, key: dg.AssetKey) -> StageNode:
        return self._nodes[key]

    def get_all_asset_keys(self) -> set[dg.AssetKey]:
        return set(self._nodes)


@dataclass(frozen=True)
class Status:
    """A partition's judgement, and why (the first reason found) when it is not fresh."""

    state: State
    reason: str = ""


def source_lineage(fingerprint: str) -> str:
    """The lineage digest of a source half made from this source object version (``source_video``)."""
    return lineage_digest({"source": fingerprint})


FRESH_STATUS = Status(FRESH)


class _Parent(NamedTuple):
    key: dg.AssetKey
    name: str
    to_video: bool  # its partition of a pair's is the pair's video (a source-half parent)


@dataclass(frozen=True)
class _Node:
    """What :meth:`Freshness.status` reads of an asset, computed once."""

    name: str
    code: str | None
    parents: tuple[_Parent, ...]  # in name order: the lineage digest's order
    observed: frozenset[dg.AssetKey] = frozenset()  # parents that are observable source assets (edits)


class Freshness:
    """Missing / stale / fresh per asset partition, from the latest data version of each partition.

    One query per asset reads the latest ``dagster/data_version`` of all its partitions (an indexed
    tag); each is a :class:`~dubbing_pipeline.orchestration.kit.Version` written by the stage kit.
    """

    def __init__(
        self, instance: dg.DagsterInstance, graph: AssetGraph, partitions: Sequence[str] | None = None
    ) -> None:
        """``partitions``: read only these (the CLI asks about one video and its dubs, not the
        catalog); every partition when None (the catalog's tick)."""
        self.instance = instance
        self.graph = graph
        self.partitions = list(partitions) if partitions is not None else None
        self._versions: dict[dg.AssetKey, dict[str, Version | None]] = {}
        self._status: dict[dg.AssetKey, dict[str, Status]] = {}
        self._nodes: dict[dg.AssetKey, _Node] = {}
        self._observed: dict[dg.AssetKey, dict[str, str]] = {}

    def versions(self, key: dg.AssetKey) -> dict[str, Version | None]:
        """Partition → latest data version of ``key`` (every materialised partition, one query)."""
        found = self._versions.get(key)
        if found is None:
            latest = self._latest(key, dg.DagsterEventType.ASSET_MATERIALIZATION)
            found = self._versions[key] = {
                pk: Version.parse(tags.get(DATA_VERSION_TAG)) for pk, tags in latest.items()
            }
        return found

    def _latest(self, key: dg.AssetKey, kind: dg.DagsterEventType) -> Mapping[str, Mapping[str, str]]:
        """The latest data version tag of each partition of ``key`` asked about (one query)."""
        own = self._own(key)
        if own == []:  # none of its kind named: asking with an empty list would read them all
            return {}
        return self.instance.event_log_storage.get_latest_tags_by_partition(
            key, kind, [DATA_VERSION_TAG], own
        )

    def _own(self, key: dg.AssetKey) -> list[str] | None:
        """The named partitions of ``key``'s own kind (a video's for the source half, a pair's
        ``video × language`` key for the target half): a query names only partitions it can have."""
        if self.partitions is None:
            return None
        pairs = self.graph.get(key).partitions_def != videos
        return [pk for pk in self.partitions if ("|" in pk) == pairs]

    def version(self, key: dg.AssetKey, pk: str) -> Version | None:
        return self.versions(key).get(pk)

    def observed(self, key: dg.AssetKey, pk: str) -> str:
        """The latest observed data version of a source asset's partition (``edits``: the content
        hash of its edits; never observed: the version of no edits, as the stage reads it)."""
        found = self._observed.get(key)
        if found is None:
            latest = self._latest(key, dg.DagsterEventType.ASSET_OBSERVATION)
            found = self._observed[key] = {pk: str(tags[DATA_VERSION_TAG]) for pk, tags in latest.items()}
        return found.get(pk, UNOBSERVED[key.to_user_string()])

    def parent_partition(self, parent: dg.AssetKey, child: dg.AssetKey, pk: str) -> str:
        parent_def = self.graph.get(parent).partitions_def
        child_def = self.graph.get(child).partitions_def
        if parent_def == child_def:
            return pk
        if isinstance(parent_def, dg.DynamicPartitionsDefinition) and parent_def.name == videos.name:
            return pk.split("|", 1)[1] if "|" in pk else pk
        raise ConfigurationError(f"no partition mapping from {child.to_user_string()} to {parent}")

    def _node(self, key: dg.AssetKey) -> _Node:
        node = self._nodes.get(key)
        if node is None:
            asset = self.graph.get(key)
            parents = [
                _Parent(parent, parent.to_user_string(), self.parent_partition(parent, key, "x|y") == "y")
                for parent in sorted(asset.parent_keys, key=lambda k: k.to_user_string())
            ]
            observed = frozenset(p for p in asset.parent_keys if not self.graph.get(p).is_materializable)
            node = self._nodes[key] = _Node(
                key.to_user_string(), asset.code_version, tuple(parents), observed
            )
        return node

    def status(self, key: dg.AssetKey, pk: str) -> Status:
        memo = self._status.get(key)
        if memo is None:
            memo = self._status[key] = {}
        found = memo.get(pk)
        if found is None:
            found = memo[pk] = self._compute(key, pk)
        return found

    def _compute(self, key: dg.AssetKey, pk: str) -> Status:
        node, versions = self._node(key), self.versions(key)
        if pk not in versions:
            return Status(MISSING, f"{node.name} never materialised")
        version = versions[pk]
        if version is None:
            return Status(STALE, f"{node.name}: its data version carries no key chain")
        if version.code.endswith(BLOCKED):
            return Status(STALE, f"{node.name}: a blocking quality check failed (see its report)")
        if node.code and version.code != node.code:
            return Status(STALE, f"{node.name}: code version {version.code} → {node.code}")
        if not node.parents:
            return FRESH_STATUS
        lines = []
        video = pk[pk.find("|") + 1 :]
        for parent, name, to_video in node.parents:
            ppk = video if to_video else pk
            if parent in node.observed:  # a source (edits): fresh when the stage read its latest version
                lines.append(name + "\t" + self.observed(parent, ppk))
                continue
            upstream = self.status(parent, ppk)
            if upstream is not FRESH_STATUS:
                return Status(STALE, f"{node.name}: upstream {upstream.reason}")
            lines.append(name + "\t" + self.data_version(parent, ppk))  # fresh: it has a data version
        if lineage_of_lines(lines) != version.lineage:
            names = ", ".join(name for _, name, _ in node.parents)
            return Status(STALE, f"{node.name}: made from other {names} data")
        return FRESH_STATUS

    def data_version(self, key: dg.AssetKey, pk: str) -> str:
        version = self.version(key, pk)
        return version.key if version else ""


__all__ = [
    "FRESH",
    "FRESH_STATUS",
    "MISSING",
    "STALE",
    "AssetGraph",
    "Freshness",
    "StageGraph",
    "Status",
    "source_lineage",
]
