"""The ``speech`` stage cores: text-to-speech, voice matching and isochrony.

* ``speech.tts`` — TTS engines (espeak-ng, Piper, Kokoro) and ``make_tts`` (per-language table).
* ``speech.cloning`` — Chatterbox voice cloning from a local model directory (production).
* ``speech.voice`` — median F0, pitch/formant matching to a speaker, voice choice by F0.
* ``speech.isochrony`` — fitting each dubbed line into its source slot (pure planning).
* ``speech.measure`` — the CER/RTF measurement behind ``tts.DEFAULT_TTS`` (not a test).

Imports are lazy: importing this package loads no model.
"""
