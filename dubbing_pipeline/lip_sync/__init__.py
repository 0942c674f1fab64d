"""Lip-sync only where a face speaks: window planning, face track, engines, bisection, composition.

``windows`` and ``core`` are pure (plain data in, plain data out); ``faces`` (with its detectors in
``face_cascades``) and ``compose`` run ffmpeg and a packaged face detector; ``providers`` picks an
engine (``base``, ``latentsync_engine``, ``musetalk_engine``); ``records`` are what the steps hand
on; ``planning`` and ``sync`` are the stage's steps and ``asset`` the Dagster shell.
"""
