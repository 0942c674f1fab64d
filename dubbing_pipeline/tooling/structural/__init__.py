"""Structural weights: randomly initialised models of the real production architectures.

No machine this project is tested on holds the production checkpoints (Demucs htdemucs, Whisper
large-v3, pyannote 3.1, Chatterbox multilingual, LatentSync). Their compute and code paths do not
depend on the values of the weights, so each module here builds a model of the real architecture
with the real library, seeded, and saves it in exactly the on-disk layout the production provider
loads. The providers then run end to end through their real libraries:

* on CPU in CI, at a reduced size where the full one would not fit the time budget
  (``full_size=False``), to test loading, shapes, rates, padding, chunking and errors;
* on a CUDA machine at full size (``full_size=True``, the FLOPs of the real models), to time them:
  ``dubbing-pipeline bench --gpu``.

Output quality is meaningless by construction; nothing here is ever a default provider.
"""
