"""Lip-sync only where a face speaks: window planning, face track, engines, bisection, composition.

``windows`` and ``core`` are pure (plain data in, plain data out); ``faces`` and ``compose`` run
ffmpeg and a packaged face detector; ``providers`` holds the engines; ``asset`` the Dagster shell.
"""
