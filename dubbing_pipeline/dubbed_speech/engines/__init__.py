"""The TTS engines, one module each (``tts.make_tts_engine`` picks one).

``espeak`` runs a program and is imported by ``tts`` itself; ``kokoro``, ``piper`` and
``chatterbox`` import their libraries (onnxruntime, piper-tts, torch and chatterbox-tts) at their
top, so the factory imports each only when that engine is chosen. ``kokoro_data`` is what Kokoro
reads besides its network (model file, phonemes, duration model), without onnxruntime.
"""
