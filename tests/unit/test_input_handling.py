"""Pure pieces behind the bad-input matrix: file URLs, ids from names, re-encode choice, test hook."""

from pathlib import Path

import pytest

from dubbing_pipeline.common.ids import video_id_from_name
from dubbing_pipeline.dubbed_video.core import needs_reencode
from dubbing_pipeline.errors import UnsupportedError
from dubbing_pipeline.orchestration.hooks import parse_pause
from dubbing_pipeline.source_video.core import require_video
from dubbing_pipeline.storage import parse_uri


def test_file_urls_are_percent_decoded_s3_keys_are_not() -> None:
    path = "/data/in here/Entrevista café ☕.mp4"
    assert parse_uri(Path(path).as_uri()) == ("file", "", path)
    assert parse_uri(path) == ("file", "", path)
    assert parse_uri("s3://bucket/a%20b.mp4") == ("s3", "bucket", "a%20b.mp4")


def test_names_without_ascii_letters_get_distinct_ids() -> None:
    a, b = video_id_from_name("東京.mp4"), video_id_from_name("大阪.mp4")
    assert a != b and a.startswith("video-") and len(a) == len("video-") + 8
    assert video_id_from_name("Entrevista café ☕  déjà vu.mp4") == "entrevista-cafe-deja-vu"
    assert video_id_from_name("..secret..mp4") == "secret"
    long_id = video_id_from_name("x" * 80 + "ø.mp4")
    assert len(long_id) <= 64 and long_id.startswith("xxx") and long_id[-9] == "-"


CODECS = [("h264", False), ("hevc", False), ("vp9", False), ("vp8", True), ("theora", True), ("prores", True)]


@pytest.mark.parametrize(("codec", "reencode"), CODECS)
def test_mp4_copy_or_reencode(codec: str, reencode: bool) -> None:
    assert needs_reencode(codec) is reencode


def test_audio_only_is_unsupported_for_dubbing() -> None:
    require_video({"has_video": True})
    with pytest.raises(UnsupportedError, match="no video stream to dub"):
        require_video({"has_video": False})


def test_pause_spec() -> None:
    assert parse_pause("speech_line:2") == ("speech_line", 2)
    assert parse_pause("mux") == ("mux", 1)
