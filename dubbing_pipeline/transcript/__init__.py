"""Transcription: speech recognition providers (``providers``) and the ``transcript`` asset."""
