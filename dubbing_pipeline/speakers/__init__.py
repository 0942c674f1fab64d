"""The ``speakers`` stage: who speaks each transcript segment.

* ``asset``: the graph asset (a diarization step per chunk, then the global speakers); ``records``.
* ``base``: the ``Diarizer`` and ``SpeakerEmbedder`` contracts (light: the asset names them).
* ``diarize``: the embedding diarizer and ``make_diarizer``, which imports the engine asked for:
  ``embedders`` (onnxruntime; resemblyzer when installed), ``pyannote_engine`` (torch, pyannote.audio,
  its directory checked by ``pyannote_config``, its turns assigned by ``turns``).
* ``clustering``: linkage within a chunk and Hungarian matching across chunks (scipy).
"""
