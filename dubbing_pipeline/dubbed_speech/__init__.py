"""The ``dubbed_speech`` stage: every translated line spoken again, in its speaker's voice, in its slot.

* ``asset`` — the stage's graph asset: plan, speak a batch of lines per step, assemble.
* ``records`` — its typed records (``DubbedSpeechRecord``, the lines' step records).
* ``speak`` — one line's policy: speak, fit, judge, repair once; the silence gate.
* ``isochrony`` — fitting each dubbed line into its source slot (pure planning).
* ``tts`` — ``make_tts``: the engine per language; ``engine`` the interface; ``engines/`` one module
  per engine (espeak-ng, Kokoro, Piper, Chatterbox voice cloning, with ``cloning``).
* ``voice`` — median F0, pitch/formant matching to a speaker, voice choice by F0.

Importing the stage loads no model: an engine's module is imported when the engine is chosen.
"""
