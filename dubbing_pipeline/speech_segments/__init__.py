"""Voice activity, the chunk plan, sentence splitting and word merging, and the ``speech_segments`` asset."""
