"""The bad-input matrix: every awkward input gets its documented outcome, and nothing else is touched.

All media is generated here with ffmpeg (lavfi test patterns, the demo's own speech and music).
One good video is dubbed first in a shared DAGSTER_HOME (a real ``dubbing-pipeline`` process); then
every case runs, in order, in one batch process (``tests/cli_batch.py``: the CLI's ``main`` per
case, each with its own stdout/stderr, so models load once). For each case the test checks the
exit code, a single one-line classified ``error`` message (no traceback), and afterwards that the
good video's records, materialisations and outputs are unchanged, that no cache record exists
for a step that did not finish, that no temporary file is left, and that a failed dub wrote no
output folder.

The outcome table (docs/stages.md, "Inputs and outcomes") is ``CASES`` below.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dubbing_pipeline.demo import DEMO_VIDEO

ROOT = Path(__file__).resolve().parent.parent
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
ERROR_LINE = re.compile(r"^error(?: \[[a-z_]+\])?: ([a-z_]+): (.+)$")
EXIT = {"dubbed": 0, "transcribed": 0, "bad_input": 3, "unsupported": 4, "ineligible": 5}


def ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def pattern(seconds: float, size: str = "160x120", rate: int = 10) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}"]


def build_media(d: Path) -> dict[str, Path]:
    """Every input of the matrix, built from lavfi sources and cuts of the demo (deterministic)."""
    p: dict[str, Path] = {}
    speech = d / "speech.wav"  # 4.25 s of the demo's dialogue: five short lines
    ff("-ss", "6.5", "-t", "4.25", "-i", str(DEMO_VIDEO), "-vn", "-c:a", "pcm_s16le", str(speech))
    music = d / "music.wav"  # the demo's instrumental intro, before anyone speaks
    ff("-t", "6.4", "-i", str(DEMO_VIDEO), "-vn", "-c:a", "pcm_s16le", str(music))
    p["good"] = d / "good.mp4"
    ff(*pattern(4.25), "-i", str(speech), *X264, "-c:a", "aac", "-shortest", str(p["good"]))
    faststart = d / "faststart.mp4"
    ff("-i", str(p["good"]), "-c", "copy", "-movflags", "+faststart", str(faststart))
    data = faststart.read_bytes()
    p["truncated"] = d / "truncated.mp4"  # index first, media data cut at 40 %
    p["truncated"].write_bytes(data[: int(len(data) * 0.4)])
    data = p["good"].read_bytes()
    p["no_index"] = d / "no_index.mp4"  # index last: cut before it
    p["no_index"].write_bytes(data[: len(data) // 2])
    p["random"] = d / "random.mp4"
    p["random"].write_bytes(hashlib.shake_256(b"not a video").digest(64_000))
    p["html"] = d / "download.mp4"  # what a failed download often saves
    p["html"].write_text("<!doctype html><html><body><h1>403 Forbidden</h1></body></html>\n")
    p["empty"] = d / "empty.mp4"
    p["empty"].write_bytes(b"")
    p["video_only"] = d / "video_only.mp4"
    ff(*pattern(3), *X264, str(p["video_only"]))
    p["single_frame"] = d / "single_frame.mp4"  # one 40 ms frame, 0.3 s of sound
    ff(*pattern(0.04, rate=25), "-f", "lavfi", "-i", "sine=frequency=300:duration=0.3", *X264,
       "-c:a", "aac", str(p["single_frame"]))  # fmt: skip
    cover = d / "cover.png"
    ff("-f", "lavfi", "-i", "testsrc=size=64x64:rate=1:duration=1", "-frames:v", "1", str(cover))
    p["audio_only"] = d / "podcast.mp3"  # speech with embedded cover art (not a video stream)
    ff("-i", str(speech), "-i", str(cover), "-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame",
       "-c:v", "png", "-disposition:v", "attached_pic", "-id3v2_version", "3",
       str(p["audio_only"]))  # fmt: skip
    p["narrowband"] = d / "narrowband.mp4"  # 8 kHz mono, like a phone recording
    ff(
        *pattern(4.25),
        "-i",
        str(speech),
        *X264,
        "-ac",
        "1",
        "-ar",
        "8000",
        "-c:a",
        "aac",
        str(p["narrowband"]),
    )
    p["surround"] = d / "surround.mov"  # 5.1 at 96 kHz, 24-bit PCM, dialogue only in the centre channel
    ff("-i", str(speech), "-i", str(music), *pattern(4.25), "-filter_complex",
       "[0]aformat=channel_layouts=mono[v];[1]atrim=0:4.25,aformat=channel_layouts=mono,volume=0.4[m];"
       "[v][m]amerge=inputs=2,pan=5.1|FL=c1|FR=c1|FC=c0|LFE=0*c0|BL=c1|BR=c1,aresample=96000[a]",
       "-map", "2:v", "-map", "[a]", *X264, "-c:a", "pcm_s24le", str(p["surround"]))  # fmt: skip
    p["vfr"] = d / "vfr.mp4"  # 30 fps for 2 s, then every 5th frame
    ff(*pattern(4.25, rate=30), "-i", str(speech), "-vf", "select='lt(t,2)+not(mod(n,5))'",
       "-fps_mode", "vfr", *X264, "-c:a", "aac", str(p["vfr"]))  # fmt: skip
    p["rotated"] = d / "rotated.mp4"  # a phone video: landscape pixels, display matrix 90°
    ff("-i", str(p["good"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(p["rotated"]))
    p["webm"] = d / "clip.webm"  # VP8 + Vorbis: MP4 cannot carry VP8, so the mux must re-encode
    ff(*pattern(4.25), "-i", str(speech), "-c:v", "libvpx", "-b:v", "300k", "-c:a", "libvorbis",
       "-shortest", str(p["webm"]))  # fmt: skip
    p["uhd"] = d / "uhd.mp4"  # a short 4K clip
    ff(*pattern(2.5, size="3840x2160", rate=5), "-ss", "1.9", "-i", str(speech), *X264, "-c:a", "aac",
       "-shortest", str(p["uhd"]))  # fmt: skip
    p["silence"] = d / "silence.mp4"  # 20 s of digital silence
    ff(*pattern(20, rate=2), "-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo", "-t", "20", *X264,
       "-c:a", "aac", str(p["silence"]))  # fmt: skip
    p["music"] = d / "music.mp4"  # real instruments, nobody speaking
    ff(*pattern(6.4), "-i", str(music), *X264, "-c:a", "aac", "-shortest", str(p["music"]))
    # Names: the same bytes as a generated clip, under hostile names (re-encoded so that the
    # source is probed and decoded again under that name, not served from the content cache).
    p["non_ascii"] = d / "Entrevista café ☕  déjà vu.mp4"
    ff("-i", str(p["good"]), "-c", "copy", "-metadata", "title=a", str(p["non_ascii"]))
    p["cjk_a"] = d / "東京.mp4"
    shutil.copyfile(p["non_ascii"], p["cjk_a"])
    p["cjk_b"] = d / "大阪.mp4"
    shutil.copyfile(p["non_ascii"], p["cjk_b"])
    p["dots"] = d / "..secret..mp4"
    shutil.copyfile(p["non_ascii"], p["dots"])
    return p


@dataclass(frozen=True)
class Case:
    name: str
    what: str  # the wording of docs/stages.md
    command: str  # transcribe | dub
    media: str  # key of build_media, or a literal path under the media dir
    outcome: str  # dubbed | transcribed | bad_input | unsupported | ineligible
    fragment: str = ""  # part of the one-line message (failures) or of the video id (successes)
    extra: tuple[str, ...] = ()
    video_id: str | None = None  # expected id on success

    @property
    def exit_code(self) -> int:
        return EXIT[self.outcome]


CASES = [
    Case("truncated", "MP4 cut to 40 % (index first)", "transcribe", "truncated", "bad_input", "truncated"),
    Case("no_index", "MP4 cut before its index (moov last)", "transcribe", "no_index", "bad_input",
         "not a readable media file"),
    Case("random", "random bytes named .mp4", "transcribe", "random", "bad_input",
         "not a readable media file"),
    Case("html", "an HTML error page saved as .mp4", "transcribe", "html", "bad_input",
         "not a readable media file"),
    Case("empty", "zero-length file", "transcribe", "empty", "bad_input", "file is empty"),
    Case("missing", "path that does not exist", "dub", "missing.mp4", "bad_input", "no such file"),
    Case("video_only", "video without an audio stream", "transcribe", "video_only", "bad_input",
         "no audio stream"),
    Case("single_frame", "a single frame (40 ms video, 0.3 s audio)", "transcribe", "single_frame",
         "bad_input", "too short"),
    Case("silence", "20 s of silence", "transcribe", "silence", "ineligible", "no speech to dub"),
    Case("music", "music without speech", "transcribe", "music", "ineligible", "no speech to dub"),
    Case("audio_only", "audio only (MP3 with cover art), transcribe", "transcribe", "audio_only",
         "transcribed", video_id="podcast"),
    Case("audio_only_dub", "audio only (MP3 with cover art), dub", "dub", "audio_only", "unsupported",
         "no video stream to dub"),
    Case("narrowband", "8 kHz mono speech", "transcribe", "narrowband", "transcribed", video_id="narrowband"),
    Case("surround", "5.1 at 96 kHz (PCM), dialogue in the centre", "transcribe", "surround", "transcribed",
         video_id="surround"),
    Case("vfr", "variable frame rate", "transcribe", "vfr", "transcribed", video_id="vfr"),
    Case("rotated", "phone video with 90° rotation side data", "transcribe", "rotated", "transcribed",
         video_id="rotated"),
    Case("uhd", "short 4K clip (3840×2160)", "transcribe", "uhd", "transcribed", video_id="uhd"),
    Case("webm", "WebM (VP8 + Vorbis), dub", "dub", "webm", "dubbed", video_id="clip"),
    Case("non_ascii", "non-ASCII, space-filled file name", "transcribe", "non_ascii", "transcribed",
         video_id="entrevista-cafe-deja-vu"),
    Case("cjk_a", "file name with no ASCII letters (東京.mp4)", "transcribe", "cjk_a", "transcribed",
         video_id="video-"),
    Case("cjk_b", "another such name (大阪.mp4): a different id", "transcribe", "cjk_b", "transcribed",
         video_id="video-"),
    Case("dots", "file name with `..` (`..secret..mp4`)", "transcribe", "dots", "transcribed",
         video_id="secret"),
    Case("traversal_id", "`--id ../../x`", "transcribe", "good", "transcribed", extra=("--id", "../../x"),
         video_id="x"),
    Case("traversal_id_bad", "`--id ../../../etc/passwd` on a bad file", "dub", "random", "bad_input",
         "not a readable media file", extra=("--id", "../../../etc/passwd")),
    Case("unsupported_language", "unsupported target language (`--to ja`)", "dub", "good", "unsupported",
         "no translator for en->ja", extra=("--id", "lang-ja")),
    Case("same_language", "target language = source (`--to en`)", "dub", "good", "unsupported",
         "are both 'en'", extra=("--id", "lang-en")),
    Case("no_language", "empty language list (`--to ,`)", "dub", "good", "bad_input", "--to needs"),
]  # fmt: skip
LANGUAGE = {"unsupported_language": "ja", "same_language": "en", "no_language": ","}


def cli_env(home: Path, work: Path) -> dict[str, str]:
    env = {**os.environ, "DAGSTER_HOME": str(home), "DUBBING_WORK_DIR": str(work)}
    env.pop("DUBBING_STORAGE_URL", None)
    return env


def snapshot(home: Path, out: Path, partitions: list[tuple[str, str]]) -> dict[str, Any]:
    """What a later, unrelated run must not change: files (bytes) and latest materialisations."""
    import dagster as dg

    media = home / "media"
    files = {}
    for base in (media / "records", media / "registry", media / "cache", media / "reports", out):
        for path in sorted(base.rglob("*")) if base.exists() else []:
            if path.is_file():
                files[str(path)] = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    instance = dg.DagsterInstance.from_config(str(home))
    latest = {}
    for asset, partition in partitions:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
        ).records
        latest[f"{asset}/{partition}"] = records[0].storage_id if records else None
    return {"files": files, "latest": latest}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("matrix")
    media_dir = base / "media in here"
    media_dir.mkdir()
    media = build_media(media_dir)
    home, work, out, logs = base / "home", base / "work", base / "out", base / "logs"
    env = cli_env(home, work)
    # 1. the control: a good video dubbed in its own process, before anything else
    control = subprocess.run(
        [sys.executable, "-m", "dubbing_pipeline.cli", "dub", str(media["good"]), "--id", "control",
         "--to", "es", "--out", str(out)],
        env=env, capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert control.returncode == 0, control.stderr[-3000:]
    stages = ["source_video", "audio_stems", "speech_segments", "transcript", "speakers"]
    partitions = [(s, "control") for s in stages] + [
        (s, "es|control") for s in ("translation", "dubbed_speech", "dub_mix", "dubbed_video")
    ]
    before = snapshot(home, out, partitions)
    # 2. every case, in order, in one batch process
    cases = []
    for case in CASES:
        path = str(media[case.media]) if case.media in media else str(media_dir / case.media)
        argv = [case.command, path]
        if case.command == "transcribe":
            argv.append("--json")
        else:
            argv += ["--to", LANGUAGE.get(case.name, "es"), "--out", str(out)]
        cases.append({"name": case.name, "argv": [*argv, *case.extra]})
    spec = base / "spec.json"
    spec.write_text(json.dumps({"out": str(logs), "cases": cases}), encoding="utf-8")
    batch = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "cli_batch.py"), str(spec)],
        env=env, capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert batch.returncode == 0, batch.stderr[-3000:]
    codes = json.loads((logs / "results.json").read_text())
    after = snapshot(home, out, partitions)
    results = {
        c.name: {
            "code": codes[c.name],
            "stdout": (logs / f"{c.name}.out").read_text(encoding="utf-8"),
            "stderr": (logs / f"{c.name}.err").read_text(encoding="utf-8"),
        }
        for c in CASES
    }
    return {"base": base, "home": home, "work": work, "out": out, "media": media, "results": results,
            "before": before, "after": after}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_outcome(matrix: dict[str, Any], case: Case) -> None:
    res = matrix["results"][case.name]
    stderr = res["stderr"]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert res["code"] == case.exit_code, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error")]
    if case.exit_code == 0:
        assert errors == [], errors
        if case.command == "transcribe":
            data = json.loads(res["stdout"])
            assert data["video_id"].startswith(str(case.video_id)), data["video_id"]
            assert data["segments"] and data["language"] == "en", data
        else:
            folder = matrix["out"] / str(case.video_id) / "es"
            assert (folder / f"{case.video_id}.es.mp4").is_file() and (folder / "es.srt").is_file()
        return
    assert len(errors) == 1, stderr[-2000:]
    match = ERROR_LINE.match(errors[0])
    assert match is not None, errors[0]
    assert match.group(1) == case.outcome and case.fragment in match.group(2), errors[0]
    assert str(matrix["base"]) not in errors[0]  # no host paths in messages


def test_the_good_video_is_untouched(matrix: dict[str, Any]) -> None:
    before, after = matrix["before"], matrix["after"]
    assert after["latest"] == before["latest"]
    changed = [path for path, sig in before["files"].items() if after["files"].get(path) != sig]
    assert changed == []


def test_no_partial_output_anywhere(matrix: dict[str, Any]) -> None:
    media = matrix["home"] / "media"
    leftovers = [
        p for p in media.rglob("*") if p.name.endswith((".part", ".partial.mp4")) or p.name.startswith(".")
    ]
    assert leftovers == []
    assert not matrix["work"].exists() or list(matrix["work"].iterdir()) == []  # scratch dirs removed
    # every stage cache record belongs to a finished asset (a failed step cached nothing)
    stage_asset = {"source": "source_video", "stems": "audio_stems", "segments": "speech_segments",
                   "translation": "translation", "mix": "dub_mix", "mux": "dubbed_video"}  # fmt: skip
    for stage, asset in stage_asset.items():
        cached = {p.parent.name for p in (media / "cache" / stage).rglob("record.json")}
        finished = {
            json.loads(p.read_text())["cache_key"] for p in (media / "records" / asset).rglob("*.json")
        }
        assert cached == finished, stage
    # the failed inputs were never cached
    sources = [json.loads(p.read_text())["sha256"] for p in (media / "cache" / "source").rglob("record.json")]
    for case in CASES:
        if case.outcome == "bad_input" and case.media in matrix["media"]:
            digest = hashlib.sha256(matrix["media"][case.media].read_bytes()).hexdigest()
            assert digest not in sources or case.media == "good", case.name


def test_failed_dubs_write_no_output_folder(matrix: dict[str, Any]) -> None:
    out = matrix["out"]
    assert sorted(p.name for p in out.iterdir()) == ["clip", "control"]
    assert sorted(p.name for p in (out / "control").iterdir()) == ["es"]
    for folder in (out / "control" / "es", out / "clip" / "es"):
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_nothing_escapes_the_instance(matrix: dict[str, Any]) -> None:
    base = matrix["base"]
    assert {p.name for p in base.iterdir()} <= {"home", "work", "logs", "media in here", "out", "spec.json"}
    assert not (base.parent / "x").exists() and not (base.parent / "etc").exists()
    records = matrix["home"] / "media" / "records" / "source_video"
    assert (records / "x.json").is_file()  # `--id ../../x` became the id "x"
    assert not (records / "etc-passwd.json").exists()  # a failed ingest writes no record


def test_recorded_source_facts(matrix: dict[str, Any]) -> None:
    from dubbing_pipeline.orchestration.io_manager import load_asset_record
    from dubbing_pipeline.storage import make_storage

    storage = make_storage(str(matrix["home"] / "media"))
    info = {v: load_asset_record(storage, "source_video", v)["info"] for v in
            ("narrowband", "surround", "vfr", "rotated", "uhd", "podcast", "clip")}  # fmt: skip
    assert info["narrowband"]["sample_rate"] == 8000 and info["narrowband"]["channels"] == 1
    assert info["surround"]["sample_rate"] == 96000 and info["surround"]["channels"] == 6
    assert info["vfr"]["variable_frame_rate"] and 10 < info["vfr"]["fps"] < 30
    assert info["rotated"]["rotation"] in (90, 270)
    assert (info["uhd"]["width"], info["uhd"]["height"]) == (3840, 2160)
    assert not info["podcast"]["has_video"]  # the cover art is not a video stream
    assert info["clip"]["video_codec"] == "vp8"
    cjk = {json.loads(matrix["results"][n]["stdout"])["video_id"] for n in ("cjk_a", "cjk_b")}
    assert len(cjk) == 2  # different names, different ids


def test_dubbed_webm_is_reencoded_and_complete(matrix: dict[str, Any]) -> None:
    mp4 = matrix["out"] / "clip" / "es" / "clip.es.mp4"
    probe = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(mp4)],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    kinds = {s["codec_type"]: s for s in probe["streams"]}
    assert kinds["video"]["codec_name"] == "h264" and kinds["audio"]["codec_name"] == "aac"
    assert abs(float(probe["format"]["duration"]) - 4.3) < 0.1


def test_rotation_and_vfr_survive_the_mux(tmp_path: Path, matrix: dict[str, Any]) -> None:
    """The mux stream-copies: a phone video keeps its display matrix and a VFR video its timestamps."""
    from dubbing_pipeline.dubbed_video.core import mux_video

    media = matrix["media"]
    wav = tmp_path / "a.wav"
    ff("-f", "lavfi", "-i", "sine=frequency=220:duration=4.3", "-ac", "2", str(wav))

    def frames(path: Path) -> list[str]:
        return subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
             "packet=pts_time:stream_side_data=rotation", "-of", "csv=p=0", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip

    for name in ("rotated", "vfr"):
        out = mux_video(media[name], wav, tmp_path / f"{name}.mp4", duration=4.25)
        assert frames(out) == frames(media[name]), name
