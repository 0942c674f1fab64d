"""Rebuild the demo clip (``demo.mp4``) and its ground truth (``reference.json``).

Usage::

    python -m dubbing_pipeline.tooling.demo_build [--out DIR] [--pyannote-sample DIR_OR_WHEEL]
                                          [--sound-icons DIR]

Sources (see ``PROVENANCE.md``):

* speech: ``pyannote/audio/sample/{sample.wav,sample.rttm,sample.stm}`` from the
  ``pyannote-audio==4.0.7`` wheel (MIT). Looked up, in order: ``--pyannote-sample`` (a folder
  holding the three files, or the wheel itself); an installed ``pyannote.audio`` distribution;
  ``pip download --no-deps pyannote-audio==4.0.7`` into a temporary folder (needs PyPI), of
  which only the ``pyannote/audio/sample/`` members are unzipped.
* music bed: instrument recordings from the Debian package ``sound-icons`` (GPL-2+),
  ``/usr/share/sounds/sound-icons`` unless ``--sound-icons`` says otherwise.
* picture: ``skimage.data.astronaut()`` (NASA photograph, public domain).

Every source file is checked against a pinned sha256, and the build is deterministic: the same
sources and the same ffmpeg/x264/numpy give the same bytes. Nothing here reads the clock, the
host name or the number of CPUs. Floating-point work that reaches the output uses only
exactly rounded operations (``+ - * /``, ``sqrt``, ``math.fsum``; the one ``pow`` is rounded to six
decimals) so that the result does not depend on the CPU's SIMD extensions.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import shutil
import subprocess
import sys
import tempfile
import wave
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from skimage import data

from dubbing_pipeline import demo

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]

DEMO_DIR = demo.DEMO_DIR

PYANNOTE_REQUIREMENT = "pyannote-audio==4.0.7"
PYANNOTE_SAMPLE_PREFIX = "pyannote/audio/sample/"
PYANNOTE_SHA256 = {
    "sample.wav": "c319b4abca767b124e41432d364fd7df006cb26bb79d09326c487d606a134e6e",
    "sample.rttm": "d78fe62c69d8e6dcbb42c26adfce83faccb374c5a1e6d987fe37f85f1c173c87",
    "sample.stm": "f861f3004927e1c4429199f9695bfd252def75d7d5e4bdf735d3d85fd4a667f7",
}

SOUND_ICONS_DIR = Path("/usr/share/sounds/sound-icons")
SOUND_ICONS_VERSION = "0.1-8"
# The bed cycles through these recordings in this order.
BED_CLIPS = {
    "piano-3.wav": "bc6ffabd3fd28a1089e8292ba3412e7702a55bcaafa575afb34c0a19b30a3fc1",
    "guitar-12.wav": "9ad7c730706aecb420604e8b65cd72952102a16f68e72416c18bf18395a773c4",
    "electric-piano-3.wav": "ff98843124350dadd9641ba212976241eed0bd2bbbaff8fd19d656fcbd46cefb",
    "cembalo-6.wav": "9e52f95920ae22174cbe30b0a3cabb5df07cf42acaa17f59a2b000d8bbcf2ae8",
    "klavichord-4.wav": "a22efeb734000d3f91d51358d5027a312ebb929a9508a2e93e11c58b45abeb91",
    "xylofon.wav": "c02e95c61e57bebdb4a04466bcbf26a88c21cf6ab3e374e7d71f113372d431f3",
    "guitar-13.wav": "d070f381929f18bfe00b03ae370de3125bc1d8cb0fa0170df28f50f17f50612e",
    "cembalo-2.wav": "5f01a28408c34dea857126be922fa7613f99561a4c700d404f99279e015277c1",
}

ASTRONAUT_SHA256 = "a8c429c18afa7b0fd5673e598d73a21225d94c864a71bbb3885126fdecb41071"

SOURCE_RATE = 16_000
OUTPUT_RATE = 44_100
DURATION_S = 30
FPS = 25
FRAMES = DURATION_S * FPS
SIZE = 480  # output width and height (the photo is 512 x 512)

SPEECH_GAIN = 2.0  # +6.02 dB: the phone-call sample peaks at -9.9 dBFS
BED_BELOW_SPEECH_DB = 16.0  # bed RMS (whole clip) below speech RMS (over the speaker turns)
CLIP_TRIM_BELOW_PEAK = 0.01  # drop each clip's head and tail quieter than -40 dB re its peak
CROSSFADE = SOURCE_RATE * 3 // 25  # 120 ms linear crossfade between clips
BED_FADE_IN = SOURCE_RATE // 2  # 0.5 s
BED_FADE_OUT = SOURCE_RATE  # 1.0 s

# Ken Burns move on the photo: the crop window (centre x, centre y, side), in source pixels.
CROP_START = (256.0, 256.0, 512.0)
CROP_END = (232.0, 200.0, 400.0)

# BT.709, limited range.
KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB

# mbtree's float code has CPU-specific versions (AVX-512 and AVX2 give different bytes with it on);
# with mbtree off the bitstream is the same on every x86-64 CPU from SSSE3 to AVX-512.
X264_PARAMS = "threads=1:mbtree=0"

# The ffmpeg (Debian 12 package, with libx264 core 164 and libsoxr) that built the committed
# demo.mp4. Other ffmpeg/x264 versions give a valid clip but, most likely, different bytes.
BUILT_WITH_FFMPEG = "5.1.9-0+deb12u1"


class DemoBuildError(RuntimeError):
    """A source or a tool the build needs is missing or is not the expected one."""


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_sha256(path: Path, expected: str, what: str) -> None:
    if not path.is_file():
        raise DemoBuildError(f"{what}: {path} is missing")
    actual = sha256_file(path)
    if actual != expected:
        raise DemoBuildError(
            f"{what}: {path} has sha256 {actual}, expected {expected}; "
            "the demo is only reproducible from the pinned source files"
        )


def _sample_files_in(folder: Path) -> Path | None:
    if all((folder / name).is_file() for name in PYANNOTE_SHA256):
        return folder
    return None


def _unzip_sample(wheel: Path, dest: Path) -> Path:
    """Extract only the ``pyannote/audio/sample/`` members of ``wheel`` into ``dest``."""
    if not zipfile.is_zipfile(wheel):
        raise DemoBuildError(f"{wheel} is not a wheel (zip) file")
    with zipfile.ZipFile(wheel) as archive:
        for name in PYANNOTE_SHA256:
            member = PYANNOTE_SAMPLE_PREFIX + name
            try:
                data = archive.read(member)
            except KeyError:
                raise DemoBuildError(f"{wheel} has no member {member}") from None
            (dest / name).write_bytes(data)
    return dest


def _installed_sample() -> Path | None:
    """The sample folder of an installed ``pyannote.audio``, found without importing it."""
    try:
        dist = importlib.metadata.distribution("pyannote.audio")
    except importlib.metadata.PackageNotFoundError:
        return None
    return _sample_files_in(Path(str(dist.locate_file(PYANNOTE_SAMPLE_PREFIX))))


def _download_sample(dest: Path) -> Path:
    wheels = dest / "wheel"
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(wheels), PYANNOTE_REQUIREMENT,
    ]  # fmt: skip
    print(f"fetching the speech sample: {' '.join(command[2:])}", file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if result.returncode != 0 or not found:
        raise DemoBuildError(
            f"could not download {PYANNOTE_REQUIREMENT} with pip ({result.stderr.strip()[-400:]}); "
            "pass --pyannote-sample DIR (a folder with sample.wav, sample.rttm and sample.stm, "
            "or the wheel file)"
        )
    extracted = dest / "sample"
    extracted.mkdir()
    return _unzip_sample(found[0], extracted)


def locate_pyannote_sample(explicit: Path | None, workdir: Path, allow_download: bool = True) -> Path:
    """The folder holding ``sample.{wav,rttm,stm}``, checked against the pinned hashes."""
    if explicit is not None:
        if explicit.is_dir():
            folder = _sample_files_in(explicit) or _sample_files_in(explicit / PYANNOTE_SAMPLE_PREFIX)
            if folder is None:
                missing = [name for name in PYANNOTE_SHA256 if not (explicit / name).is_file()]
                raise DemoBuildError(f"--pyannote-sample {explicit}: missing {', '.join(missing)}")
        elif explicit.is_file():
            extracted = workdir / "sample"
            extracted.mkdir()
            folder = _unzip_sample(explicit, extracted)
        else:
            raise DemoBuildError(f"--pyannote-sample {explicit}: no such file or folder")
    else:
        installed = _installed_sample()
        if installed is not None:
            folder = installed
        elif allow_download:
            folder = _download_sample(workdir)
        else:
            raise DemoBuildError(
                f"the {PYANNOTE_REQUIREMENT} speech sample was not found and pip download is disabled; "
                "pass --pyannote-sample DIR"
            )
    for name, digest in PYANNOTE_SHA256.items():
        _check_sha256(folder / name, digest, f"speech sample ({PYANNOTE_REQUIREMENT})")
    return folder


def locate_sound_icons(folder: Path) -> Path:
    if not folder.is_dir():
        raise DemoBuildError(
            f"sound-icons recordings not found in {folder}: install the Debian/Ubuntu package "
            "'sound-icons' (apt-get install sound-icons) or pass --sound-icons DIR"
        )
    for name, digest in BED_CLIPS.items():
        _check_sha256(folder / name, digest, f"music bed (sound-icons {SOUND_ICONS_VERSION})")
    return folder


def load_astronaut() -> NDArray[np.uint8]:
    astronaut: Callable[[], NDArray[np.uint8]] = data.astronaut
    image = np.ascontiguousarray(astronaut(), dtype=np.uint8)
    digest = hashlib.sha256(image.tobytes()).hexdigest()
    if image.shape != (512, 512, 3) or digest != ASTRONAUT_SHA256:
        raise DemoBuildError(
            f"skimage.data.astronaut() is not the expected image (shape {image.shape}, sha256 {digest})"
        )
    return image


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DemoBuildError(f"{name} not found on PATH: install ffmpeg (with libx264 and libsoxr)")
    return path


def ffmpeg_version(ffmpeg: str | None = None) -> str:
    """The version word of ``ffmpeg -version`` (e.g. ``5.1.9-0+deb12u1``)."""
    result = subprocess.run(
        [ffmpeg or find_tool("ffmpeg"), "-hide_banner", "-version"],
        capture_output=True,
        text=True,
        check=False,
    )
    words = result.stdout.split()
    return words[2] if len(words) > 2 and words[:2] == ["ffmpeg", "version"] else "unknown"


# --------------------------------------------------------------------------------------------
# Reference (ground truth)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    speaker: str
    text: str = ""


def parse_stm(path: Path) -> list[Span]:
    """``<file> <channel> <speaker> <start> <end> <text...>`` lines."""
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or line.startswith(";;"):
            continue
        spans.append(Span(float(fields[3]), float(fields[4]), fields[2], fields[5].strip()))
    return spans


def parse_rttm(path: Path) -> list[Span]:
    """``SPEAKER <file> <channel> <onset> <duration> <NA> <NA> <speaker> ...`` lines."""
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) < 8 or fields[0] != "SPEAKER":
            continue
        onset, duration = float(fields[3]), float(fields[4])
        spans.append(Span(onset, round(onset + duration, 3), fields[7]))
    return spans


def map_speakers(turns: Sequence[Span], segments: Sequence[Span]) -> dict[str, str]:
    """Map each RTTM label to the STM speaker it overlaps most; the mapping must be one-to-one."""
    overlap: dict[tuple[str, str], float] = {}
    for turn in turns:
        for seg in segments:
            shared = min(turn.end, seg.end) - max(turn.start, seg.start)
            if shared > 0:
                key = (turn.speaker, seg.speaker)
                overlap[key] = overlap.get(key, 0.0) + shared
    labels = sorted({turn.speaker for turn in turns})
    names = sorted({seg.speaker for seg in segments})
    mapping = {
        label: max(names, key=lambda name: (overlap.get((label, name), 0.0), name)) for label in labels
    }
    if sorted(mapping.values()) != names:
        raise DemoBuildError(f"cannot map RTTM speakers {labels} one-to-one onto STM speakers {names}")
    return mapping


def build_reference(sample_dir: Path) -> dict[str, object]:
    segments = parse_stm(sample_dir / "sample.stm")
    raw_turns = parse_rttm(sample_dir / "sample.rttm")
    mapping = map_speakers(raw_turns, segments)
    speakers = sorted({seg.speaker for seg in segments})
    return {
        "video": "demo.mp4",
        "duration": float(DURATION_S),
        "language": "en",
        "speakers": speakers,
        "segments": [
            {"start": s.start, "end": s.end, "speaker": s.speaker, "text": s.text} for s in segments
        ],
        "turns": [{"start": t.start, "end": t.end, "speaker": mapping[t.speaker]} for t in raw_turns],
        "sources": {
            "speech": {
                "from": f"PyPI wheel {PYANNOTE_REQUIREMENT}, {PYANNOTE_SAMPLE_PREFIX}sample.wav",
                "license": "MIT",
                "segments": "sample.stm (times unchanged)",
                "turns": "sample.rttm, " + ", ".join(f"{k} = {v}" for k, v in sorted(mapping.items())),
            },
            "music": {
                "from": f"Debian package sound-icons {SOUND_ICONS_VERSION}: " + ", ".join(BED_CLIPS),
                "license": "GPL-2+",
                "level_db": -BED_BELOW_SPEECH_DB,
            },
            "picture": {
                "from": "skimage.data.astronaut() (NASA photograph of Eileen Collins)",
                "license": "public domain",
            },
            "build": "python -m dubbing_pipeline.tooling.demo_build (see PROVENANCE.md)",
        },
    }


# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------


def read_wav_mono16(path: Path) -> F64:
    """A 16-bit mono PCM WAV at ``SOURCE_RATE`` as float64 samples in [-1, 1)."""
    with wave.open(str(path), "rb") as handle:
        params = handle.getparams()
        frames = handle.readframes(params.nframes)
    if (params.nchannels, params.sampwidth, params.framerate) != (1, 2, SOURCE_RATE):
        raise DemoBuildError(
            f"{path}: expected 16-bit mono {SOURCE_RATE} Hz PCM, got {params.nchannels} channel(s), "
            f"{8 * params.sampwidth}-bit, {params.framerate} Hz"
        )
    return np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0


def rms(signal: F64) -> float:
    """Root mean square, summed exactly (``math.fsum``) so it is the same on every CPU."""
    return math.sqrt(math.fsum((signal * signal).tolist()) / max(len(signal), 1))


def ramp(length: int) -> F64:
    """``length`` points rising linearly from just above 0 to just below 1."""
    return (np.arange(length, dtype=np.float64) + 0.5) / length


def prepare_clip(clip: F64) -> F64:
    """Trim a clip's quiet head and tail and bring it to unit RMS."""
    loud = np.flatnonzero(np.abs(clip) > CLIP_TRIM_BELOW_PEAK * float(np.max(np.abs(clip))))
    trimmed = clip[loud[0] : loud[-1] + 1]
    return trimmed / rms(trimmed)


def _cycle(clips: Sequence[F64]) -> Iterator[F64]:
    while True:
        yield from clips


def build_bed(clips: Sequence[F64], length: int) -> F64:
    """Concatenate ``clips`` (cycled) with linear crossfades, cut to ``length``, fade in and out."""
    fade = ramp(CROSSFADE)
    bed = np.zeros(0, dtype=np.float64)
    for clip in _cycle(clips):
        if len(bed) == 0:
            bed = clip.copy()
        else:
            head = bed[-CROSSFADE:] * fade[::-1] + clip[:CROSSFADE] * fade
            bed = np.concatenate([bed[:-CROSSFADE], head, clip[CROSSFADE:]])
        if len(bed) >= length:
            break
    bed = bed[:length].copy()
    bed[:BED_FADE_IN] *= ramp(BED_FADE_IN)
    bed[-BED_FADE_OUT:] *= ramp(BED_FADE_OUT)[::-1]
    return bed


def turn_mask(turns: Sequence[Span], length: int) -> NDArray[np.bool_]:
    mask = np.zeros(length, dtype=bool)
    for turn in turns:
        mask[round(turn.start * SOURCE_RATE) : round(turn.end * SOURCE_RATE)] = True
    return mask


@dataclass(frozen=True)
class Mix:
    mix: F64
    speech_db: float  # speech RMS over the speaker turns, dBFS
    bed_db: float  # bed RMS over the whole clip, dBFS
    bed_during_speech_db: float  # bed RMS over the speaker turns, dBFS
    peak: float


def db(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf


def build_mix(sample_dir: Path, icons_dir: Path) -> Mix:
    length = SOURCE_RATE * DURATION_S
    speech = read_wav_mono16(sample_dir / "sample.wav")
    if len(speech) != length:
        raise DemoBuildError(f"sample.wav has {len(speech)} samples, expected {length}")
    speech = speech * SPEECH_GAIN
    mask = turn_mask(parse_rttm(sample_dir / "sample.rttm"), length)
    speech_rms = rms(speech[mask])

    bed = build_bed([prepare_clip(read_wav_mono16(icons_dir / name)) for name in BED_CLIPS], length)
    # Round the gain so that the last bits of the RMS cannot change the output.
    gain = round(speech_rms / rms(bed) / 10.0 ** (BED_BELOW_SPEECH_DB / 20.0), 6)
    bed = bed * gain
    mix = speech + bed
    peak = float(np.max(np.abs(mix)))
    if peak >= 1.0:
        raise DemoBuildError(f"the mix clips (peak {peak:.3f})")
    return Mix(mix, db(speech_rms), db(rms(bed)), db(rms(bed[mask])), peak)


# --------------------------------------------------------------------------------------------
# Picture
# --------------------------------------------------------------------------------------------


def yuv_planes(image: NDArray[np.uint8]) -> tuple[F32, F32, F32]:
    """The photo as full-resolution Y, Cb, Cr planes (BT.709, limited range), float32.

    The conversion is linear, so converting once and then resampling each plane is the same as
    resampling RGB and converting every frame, and much cheaper.
    """
    rgb = image.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = KR * r + KG * g + KB * b  # 0..255
    y = 16.0 + luma * (219.0 / 255.0)
    cb = 128.0 + (b - luma) * (224.0 / 255.0 / (2.0 * (1.0 - KB)))
    cr = 128.0 + (r - luma) * (224.0 / 255.0 / (2.0 * (1.0 - KR)))
    return (
        np.ascontiguousarray(y, dtype=np.float32),
        np.ascontiguousarray(cb, dtype=np.float32),
        np.ascontiguousarray(cr, dtype=np.float32),
    )


def _taps(
    centre: float, side: float, limit: int, count: int
) -> tuple[NDArray[np.intp], NDArray[np.intp], F32]:
    """Bilinear taps (lower index, upper index, upper weight) sampling ``count`` pixels of the crop."""
    positions = centre - side / 2.0 + (np.arange(count, dtype=np.float64) + 0.5) * (side / count) - 0.5
    positions = np.clip(positions, 0.0, limit - 1.0)
    lower = np.floor(positions).astype(np.intp)
    upper = np.minimum(lower + 1, limit - 1)
    return lower, upper, (positions - lower).astype(np.float32)


def _resample(plane: F32, cx: float, cy: float, side: float, count: int) -> bytes:
    """The crop window of ``plane`` resampled (bilinear) to ``count`` x ``count`` 8-bit pixels."""
    height, width = plane.shape
    x0, x1, wx = _taps(cx, side, width, count)
    y0, y1, wy = _taps(cy, side, height, count)
    rows = plane[y0] * (1.0 - wy)[:, None] + plane[y1] * wy[:, None]
    out = rows[:, x0] * (1.0 - wx) + rows[:, x1] * wx
    pixels: NDArray[np.uint8] = np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
    return pixels.tobytes()


def render_frame(planes: tuple[F32, F32, F32], index: int) -> bytes:
    """Frame ``index`` as planar YUV 4:2:0; chroma is sampled at the centre of each 2 x 2 block."""
    e = index / (FRAMES - 1)  # linear: constant, slow motion, so consecutive frames always differ
    cx, cy, side = (a + (b - a) * e for a, b in zip(CROP_START, CROP_END, strict=True))
    y, cb, cr = planes
    return (
        _resample(y, cx, cy, side, SIZE)
        + _resample(cb, cx, cy, side, SIZE // 2)
        + _resample(cr, cx, cy, side, SIZE // 2)
    )


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def ffmpeg_command(ffmpeg: str, audio_raw: Path, output: Path) -> list[str]:
    out_samples = OUTPUT_RATE * DURATION_S
    audio_filter = (
        f"aresample={OUTPUT_RATE}:resampler=soxr:precision=28,"
        f"apad=whole_len={out_samples},atrim=end_sample={out_samples},"
        "pan=stereo|c0=c0|c1=c0"
    )
    color = ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv"]
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-threads", "1", "-filter_threads", "1", "-filter_complex_threads", "1",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{SIZE}x{SIZE}", "-framerate", str(FPS),
        *color, "-i", "pipe:0",
        "-f", "f32le", "-ar", str(SOURCE_RATE), "-ac", "1", "-i", str(audio_raw),
        "-map", "0:v:0", "-map", "1:a:0", "-map_metadata", "-1", "-map_chapters", "-1",
        "-c:v", "libx264", "-preset", "medium", "-crf", "28", "-g", "50", "-keyint_min", "50",
        "-sc_threshold", "0", "-profile:v", "high", "-pix_fmt", "yuv420p", "-threads:v", "1",
        "-x264-params", X264_PARAMS, *color,
        "-bsf:v", "filter_units=remove_types=6",  # drop x264's SEI (its version and options)
        "-af", audio_filter, "-c:a", "aac", "-b:a", "128k", "-ar", str(OUTPUT_RATE), "-ac", "2",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-movflags", "+faststart", "-f", "mp4", str(output),
    ]  # fmt: skip


def encode(mix: F64, image: NDArray[np.uint8], output: Path, workdir: Path) -> None:
    ffmpeg = find_tool("ffmpeg")
    audio_raw = workdir / "mix.f32"
    audio_raw.write_bytes(mix.astype("<f4").tobytes())
    command = ffmpeg_command(ffmpeg, audio_raw, output)
    planes = yuv_planes(image)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=log)
        assert process.stdin is not None
        try:
            for index in range(FRAMES):
                process.stdin.write(render_frame(planes, index))
            process.stdin.close()
        except BrokenPipeError:
            pass
        code = process.wait()
        log.seek(0)
        message = log.read().decode("utf-8", "replace").strip()
    if code != 0:
        raise DemoBuildError(f"ffmpeg failed (exit {code}): {message[-1500:]}")


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def reference_text(reference: dict[str, object]) -> str:
    return json.dumps(reference, indent=2, ensure_ascii=False) + "\n"


def build(
    out: Path,
    pyannote_sample: Path | None = None,
    sound_icons: Path = SOUND_ICONS_DIR,
    allow_download: bool = True,
) -> Mix:
    """Write ``demo.mp4`` and ``reference.json`` into ``out``; returns the mix and its levels."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="demo-build-") as tmp:
        workdir = Path(tmp)
        sample_dir = locate_pyannote_sample(pyannote_sample, workdir, allow_download)
        icons_dir = locate_sound_icons(sound_icons)
        image = load_astronaut()
        reference = build_reference(sample_dir)
        mix = build_mix(sample_dir, icons_dir)
        video = workdir / "demo.mp4"
        encode(mix.mix, image, video, workdir)
        shutil.move(video, out / "demo.mp4")
    (out / "reference.json").write_text(reference_text(reference), encoding="utf-8")
    return mix


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dubbing_pipeline.tooling.demo_build", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="output folder (default: %(default)s)")
    parser.add_argument(
        "--pyannote-sample",
        type=Path,
        default=None,
        help=f"folder with sample.wav/.rttm/.stm, or the {PYANNOTE_REQUIREMENT} wheel "
        "(default: installed pyannote.audio, else pip download)",
    )
    parser.add_argument(
        "--sound-icons", type=Path, default=SOUND_ICONS_DIR, help="sound-icons folder (default: %(default)s)"
    )
    parser.add_argument("--no-download", action="store_true", help="never run pip download")
    args = parser.parse_args(argv)
    try:
        mix = build(args.out, args.pyannote_sample, args.sound_icons, not args.no_download)
    except DemoBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    video = args.out / "demo.mp4"
    print(f"{video}: {video.stat().st_size} bytes, sha256 {sha256_file(video)}")
    version = ffmpeg_version()
    if version != BUILT_WITH_FFMPEG:
        print(
            f"note: built with ffmpeg {version}; the committed demo.mp4 was built with ffmpeg "
            f"{BUILT_WITH_FFMPEG}, so its bytes may differ",
            file=sys.stderr,
        )
    print(
        f"speech {mix.speech_db:.2f} dBFS (RMS over turns), bed {mix.bed_db:.2f} dBFS (RMS, whole clip): "
        f"speech-to-bed {mix.speech_db - mix.bed_db:.2f} dB "
        f"({mix.speech_db - mix.bed_during_speech_db:.2f} dB during turns), peak {db(mix.peak):.2f} dBFS"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
