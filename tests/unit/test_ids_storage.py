"""Ids and storage keys: nothing can escape the storage root or bucket prefix; writes are atomic."""

from pathlib import Path

import boto3
import pytest

from dubbing_pipeline.common import ids
from dubbing_pipeline.common.hashing import cache_key, canonical_json
from dubbing_pipeline.common.ids import join_key, partition_key_parts, sanitize_id, video_id_from_name
from dubbing_pipeline.orchestration.cache import StepCache
from dubbing_pipeline.storage import LocalStorage, make_storage
from dubbing_pipeline.storage.s3 import S3Storage


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("My Video (final).mp4", "my-video-final.mp4"),
        ("../../etc/passwd", "etc-passwd"),
        ("Café olé", "cafe-ole"),
        ("日本語", "video"),
        ("....", "video"),
        ("a//b\\c", "a-b-c"),
    ],
)
def test_sanitize_id(raw: str, expected: str) -> None:
    assert sanitize_id(raw) == expected


def test_an_id_already_safe_is_returned_as_is_exactly_when_sanitising_keeps_it() -> None:
    """The fast path (a catalog's ids are mostly already safe) agrees with the full rule on every
    string of up to 5 characters over the characters the rule treats differently: what it returns
    unchanged is exactly what the rule keeps."""
    alphabet = "a0_-.A/ é"
    words = [""]
    for _ in range(5):
        words = [w + c for w in words for c in alphabet]
        for word in words:
            full = ids._sanitized(word, ids.MAX_ID_LEN)
            assert (ids._SAFE.fullmatch(word) is not None) == (full == word), word
            assert sanitize_id(word) == full
    assert sanitize_id("a" * 80) == "a" * ids.MAX_ID_LEN
    assert sanitize_id("ab-cd", max_len=3) == "ab"


def test_video_id_from_name_drops_directories_and_extension() -> None:
    assert video_id_from_name("incoming/2024/Interview Take 2.MOV") == "interview-take-2"
    assert video_id_from_name("../../secret.mp4") == "secret"
    assert video_id_from_name(".hidden") == "hidden"


@pytest.mark.parametrize("bad", ["..", "a/../b", "", "a b", "/abs", "x/./y"])
def test_join_key_refuses_unsafe_parts(bad: str) -> None:
    with pytest.raises(ValueError):
        join_key("records", bad)


def test_partition_key_parts() -> None:
    assert partition_key_parts("es|demo") == ["es", "demo"]


def test_cache_key_is_stable_and_sensitive() -> None:
    a = cache_key("stage", x=1, y={"b": 2, "a": 1})
    assert a == cache_key("stage", y={"a": 1, "b": 2}, x=1)
    assert a != cache_key("stage", x=2, y={"a": 1, "b": 2})
    assert a != cache_key("other", x=1, y={"a": 1, "b": 2})
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def test_local_storage_roundtrip_and_confinement(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "root")
    uri = store.put_bytes("a/b.txt", b"hello")
    assert uri.startswith("file://") and store.get_bytes("a/b.txt") == b"hello"
    assert store.key_of(uri) == "a/b.txt"
    assert store.list_keys("a") == ["a/b.txt"]
    with pytest.raises(ValueError):
        store.put_bytes("../escape.txt", b"x")
    assert not (tmp_path / "escape.txt").exists()
    # no temp files left behind
    assert [p.name for p in (tmp_path / "root" / "a").iterdir()] == ["b.txt"]


def test_local_storage_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    with pytest.raises(FileNotFoundError):
        store.put_file("x/y.bin", tmp_path / "missing.bin")
    assert not store.exists("x/y.bin")
    assert list((tmp_path / "x").iterdir()) == []


def test_step_cache_record_is_written_last(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    cache = StepCache(store, "stage")
    key = cache_key("stage", n=1)
    assert cache.get(key) is None
    src = tmp_path / "f.bin"
    src.write_bytes(b"data")
    cache.put_artifact(key, "f.bin", src)
    assert cache.get(key) is None  # artifacts alone are not a result
    cache.put(key, {"ok": True})
    assert cache.get(key) == {"ok": True}


def test_make_storage_schemes(tmp_path: Path) -> None:
    assert isinstance(make_storage(str(tmp_path)), LocalStorage)
    assert isinstance(make_storage(tmp_path.as_uri()), LocalStorage)
    from dubbing_pipeline.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        make_storage("ftp://host/x")
    with pytest.raises(ConfigurationError):
        make_storage("s3:///nobucket")


def test_s3_storage_against_moto_server(moto_s3: str) -> None:
    client = boto3.client("s3", endpoint_url=moto_s3)
    client.create_bucket(Bucket="media")
    store = S3Storage("media", "tenant/a", client=client)
    uri = store.put_bytes("x/y.json", b"{}")
    assert uri == "s3://media/tenant/a/x/y.json"
    assert store.exists("x/y.json") and not store.exists("x/z.json")
    assert store.list_keys("x") == ["x/y.json"]
    assert store.key_of(uri) == "x/y.json"
    with pytest.raises(ValueError):
        store.put_bytes("../../other/evil", b"x")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="media").get("Contents", [])]
    assert keys == ["tenant/a/x/y.json"]
