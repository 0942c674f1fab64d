"""One video id rule for every entry point: two different sources never share an id (issue 26).

``registry.claim_video_id`` is the rule (the CLI, the drop sensors and the catalog all claim through
it); ``registry.find_video_id`` is its read-only twin for the commands that only look a video up.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from dubbing_pipeline.cli import common
from dubbing_pipeline.common.ids import MAX_ID_LEN
from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.orchestration import catalog as cat
from dubbing_pipeline.orchestration.registry import (
    claim_video_id,
    find_video_id,
    hashed_video_id,
    lookup_video,
    register_video,
)
from dubbing_pipeline.orchestration.sensors import drop_video_id, resolve_video_id
from dubbing_pipeline.storage import LocalStorage


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media")


def _claim(storage: LocalStorage, path: str, explicit: str | None = None) -> str:
    """What ``dub PATH`` claims: the file's name, its absolute file:// URI."""
    return claim_video_id(storage, Path(path).name, Path("/videos", path).as_uri(), explicit)


def test_the_same_file_name_in_two_folders_is_two_videos_and_each_keeps_its_id(storage: LocalStorage) -> None:
    a = _claim(storage, "a/intro.mp4")
    b = _claim(storage, "b/intro.mp4")
    assert a == "intro"
    assert b == hashed_video_id("intro", Path("/videos/b/intro.mp4").as_uri())
    assert b.startswith("intro-") and len(b) == len("intro-") + 8
    assert lookup_video(storage, a)["source_uri"].endswith("/a/intro.mp4")
    assert lookup_video(storage, b)["source_uri"].endswith("/b/intro.mp4")
    # stable: the same file again gets the same id, in either order
    assert _claim(storage, "b/intro.mp4") == b
    assert _claim(storage, "a/intro.mp4") == a
    # a source keeps its hashed id even when the base id is free again
    storage.delete("registry/videos/intro.json")
    assert _claim(storage, "b/intro.mp4") == b


@pytest.mark.parametrize(("first", "second"), [("My Video.mp4", "my-video.mp4"), ("Été.mp4", "ete.mp4")])
def test_names_that_sanitise_alike_are_two_videos(storage: LocalStorage, first: str, second: str) -> None:
    one, two = _claim(storage, first), _claim(storage, second)
    assert one != two
    assert (_claim(storage, first), _claim(storage, second)) == (one, two)


def test_an_explicit_id_is_used_as_given_and_repoints_the_registry(storage: LocalStorage) -> None:
    assert _claim(storage, "a/intro.mp4") == "intro"
    assert _claim(storage, "c/keynote.mov", explicit="Intro") == "intro"
    assert lookup_video(storage, "intro")["source_uri"].endswith("/c/keynote.mov")
    # the file that had the id is now told apart from it
    assert _claim(storage, "a/intro.mp4") == hashed_video_id("intro", Path("/videos/a/intro.mp4").as_uri())
    # an explicit id already pointing at its source is not written again (what it holds stays)
    register_video(storage, "intro", Path("/videos/c/keynote.mov").as_uri(), fingerprint="f1")
    assert _claim(storage, "c/keynote.mov", explicit="intro") == "intro"
    assert lookup_video(storage, "intro")["fingerprint"] == "f1"


def test_the_read_only_lookup_finds_the_id_the_claim_gave_and_writes_nothing(storage: LocalStorage) -> None:
    a_uri, b_uri = Path("/videos/a/intro.mp4").as_uri(), Path("/videos/b/intro.mp4").as_uri()
    assert find_video_id(storage, "intro.mp4", a_uri) == "intro"  # nothing registered: the base id
    assert not storage.list_keys("registry")
    a = claim_video_id(storage, "intro.mp4", a_uri)
    # b is not registered yet: it is not a's id (an edit must never land on a's dub)
    assert find_video_id(storage, "intro.mp4", b_uri) == hashed_video_id("intro", b_uri)
    b = claim_video_id(storage, "intro.mp4", b_uri)
    assert (find_video_id(storage, "intro.mp4", a_uri), find_video_id(storage, "intro.mp4", b_uri)) == (a, b)
    assert find_video_id(storage, "intro.mp4", b_uri, explicit="My Id") == "my-id"
    assert sorted(storage.list_keys("registry")) == sorted(
        [f"registry/videos/{a}.json", f"registry/videos/{b}.json"]
    )


class _Gate(LocalStorage):
    """Every claimant's first create-if-absent write waits until all of them have read the
    registry: all of them saw the base id free, and the storage alone decides."""

    def __init__(self, root: Path, parties: int) -> None:
        super().__init__(root)
        self.barrier = threading.Barrier(parties)
        self.waited: set[int] = set()

    def put_if(self, key: str, data: bytes, expected: str | None) -> str:
        me = threading.get_ident()
        if me not in self.waited:
            self.waited.add(me)
            self.barrier.wait(timeout=30)
        return super().put_if(key, data, expected)


def test_claims_racing_for_one_base_id_get_one_id_each(tmp_path: Path) -> None:
    storage = _Gate(tmp_path / "media", 8)
    uris = [f"s3://drops/folder{i}/intro.mp4" for i in range(8)]
    got: dict[str, str] = {}

    def claim(uri: str) -> None:
        got[uri] = claim_video_id(storage, "intro.mp4", uri)

    threads = [threading.Thread(target=claim, args=(uri,)) for uri in uris]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == 8 and len(set(got.values())) == 8
    assert sum(vid == "intro" for vid in got.values()) == 1
    for uri, vid in got.items():
        assert lookup_video(storage, vid)["source_uri"] == uri
        assert claim_video_id(storage, "intro.mp4", uri) == vid


def test_a_base_and_hashed_id_both_held_elsewhere_is_a_clear_error(storage: LocalStorage) -> None:
    uri = "s3://b/new/intro.mp4"
    register_video(storage, "intro", "s3://b/one/intro.mp4")
    register_video(storage, hashed_video_id("intro", uri), "s3://b/two/intro.mp4")
    with pytest.raises(BadInputError, match="explicit id"):
        claim_video_id(storage, "intro.mp4", uri)


def test_a_hashed_id_fits_the_id_length(storage: LocalStorage) -> None:
    name = "x" * 100 + ".mp4"
    claim_video_id(storage, name, "s3://b/1/" + name)
    vid = claim_video_id(storage, name, "s3://b/2/" + name)
    assert len(vid) <= MAX_ID_LEN and vid.startswith("x" * 55 + "-")


def test_drops_keep_their_folders_and_use_the_rule(storage: LocalStorage) -> None:
    assert drop_video_id("shows/ep1.mp4") == "shows-ep1"
    assert resolve_video_id(storage, "a/intro.mp4", "s3://d/a/intro.mp4") == "a-intro"
    assert resolve_video_id(storage, "b/intro.mp4", "s3://d/b/intro.mp4") == "b-intro"
    # the CLI's file called intro.mp4 and a drop at the top of another bucket: two videos
    assert _claim(storage, "x/intro.mp4") == "intro"
    dropped = resolve_video_id(storage, "intro.mp4", "s3://other/intro.mp4")
    assert dropped == hashed_video_id("intro", "s3://other/intro.mp4")
    assert resolve_video_id(storage, "intro.mp4", "s3://other/intro.mp4") == dropped


def test_catalog_entries_without_id_follow_the_rule(storage: LocalStorage) -> None:
    text = (
        "languages: [es]\nvideos:\n"
        "  - s3://m/a/intro.mp4\n"
        "  - s3://m/b/intro.mp4\n"
        "  - {id: talk, source: s3://m/keynote.mp4}\n"
        "  - s3://m/c/talk.mp4\n"
        "  - {id: talk, source: s3://m/other.mp4}\n"  # an explicit id used twice: refused
    )
    catalog = cat.parse_catalog(text)
    assert list(catalog.refused) == ["videos[4] (talk)"]
    reserved = {v.video_id for v in catalog.videos if v.explicit}
    vids, refused = cat.resolve_ids(storage, catalog.videos, {}, reserved)
    ids = {v.source_uri: v.video_id for v in vids}
    assert not refused
    assert ids == {
        "s3://m/a/intro.mp4": "intro",  # the first in catalog order keeps the base id
        "s3://m/b/intro.mp4": hashed_video_id("intro", "s3://m/b/intro.mp4"),
        "s3://m/keynote.mp4": "talk",
        "s3://m/c/talk.mp4": hashed_video_id("talk", "s3://m/c/talk.mp4"),  # 'talk' is an explicit id
    }
    assert lookup_video(storage, "talk")["source_uri"] == "s3://m/keynote.mp4"
    # the next tick: the same ids, from the registry or from the catalog's index alone
    again, _ = cat.resolve_ids(storage, catalog.videos, {}, reserved)
    assert {v.source_uri: v.video_id for v in again} == ids
    index = {v.video_id: [v.source_uri, "fp"] for v in vids}

    class NoReads(LocalStorage):
        def get_versioned(self, key: str) -> Any:
            raise AssertionError(f"read {key}")

    cached, _ = cat.resolve_ids(NoReads(storage.root), catalog.videos, index, reserved)
    assert {v.source_uri: v.video_id for v in cached} == ids
    # the same source listed twice without an id: one video, the second entry refused
    twice = cat.parse_catalog("languages: [es]\nvideos:\n  - s3://m/a/intro.mp4\n  - s3://m/a/intro.mp4\n")
    vids, refused = cat.resolve_ids(storage, twice.videos, {}, set())
    assert [v.video_id for v in vids] == ["intro"] and list(refused) == ["s3://m/a/intro.mp4"]


class _Instance:
    def __init__(self) -> None:
        self.videos: set[str] = set()

    def has_dynamic_partition(self, name: str, key: str) -> bool:
        return key in self.videos

    def add_dynamic_partitions(self, name: str, keys: list[str]) -> None:
        self.videos.update(keys)


def test_cli_dub_and_edit_agree_on_ids_of_same_named_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("DUBBING_STORAGE_URL", str(tmp_path / "media"))
    instance = _Instance()
    monkeypatch.setattr(common, "local_instance", lambda: instance)
    for folder in "ab":
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "intro.mp4").write_bytes(folder.encode())
    a, b = (str(tmp_path / folder / "intro.mp4") for folder in "ab")
    _, storage, vid_a = common.register_local(a, None)
    assert common.resolve_video_id(b, None) != vid_a  # before b is dubbed, its edits are never a's
    _, _, vid_b = common.register_local(b, None)
    assert vid_a == "intro" and vid_b.startswith("intro-") and instance.videos == {vid_a, vid_b}
    assert (common.resolve_video_id(a, None), common.resolve_video_id(b, None)) == (vid_a, vid_b)
    assert common.register_local(b, None)[2] == vid_b
    assert lookup_video(storage, vid_b)["source_uri"] == Path(b).resolve().as_uri()
    # --id: as given, and it re-points
    assert common.register_local(b, "Intro")[2] == "intro"
    assert lookup_video(storage, "intro")["source_uri"] == Path(b).resolve().as_uri()
    assert (
        common.resolve_video_id("whatever", "Intro") == "intro"
        and common.resolve_video_id("demo", None) == "demo"
    )
