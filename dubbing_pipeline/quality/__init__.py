"""Quality metrics: WER/CER, diarization error rate, SDR and signal alignment."""
