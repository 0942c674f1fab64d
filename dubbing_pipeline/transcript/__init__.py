"""Transcription: the recognizer interface, its engine and factory, and the ``transcript`` asset."""
