"""Developer tooling: benchmarks, the catalog at scale, the GPU check, calibration, labelled sets,
the demo builder and the structural weights of the production models.

The running pipeline never imports this package (``tests/unit/test_layout.py`` keeps it so): the
``bench`` command reaches the CLI through the ``dubbing_pipeline.commands`` entry point.
"""
