"""Run many ``dubbing-pipeline`` command lines in one process, each with its own stdout/stderr files.

``python tests/cli_batch.py SPEC.json`` reads ``{"cases": [{"name", "argv"}...], "out": DIR}``,
calls ``dubbing_pipeline.cli.main(argv)`` for each case in order (the console script's entry
point) with file descriptors 1 and 2 redirected to ``DIR/<name>.out`` / ``DIR/<name>.err``, and
writes ``DIR/results.json`` (``{name: exit code}``). Imports and models load once instead of once
per case, which keeps the bad-input matrix fast. An exception escaping ``main`` is printed as a
traceback into the case's stderr and gives exit code 99, so a test sees exactly what a user would.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path


def run_case(argv: list[str], out: Path, err: Path) -> int:
    from dubbing_pipeline.cli import main

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(out, "wb") as fout, open(err, "wb") as ferr:
        os.dup2(fout.fileno(), 1)
        os.dup2(ferr.fileno(), 2)
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 99
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    return int(code)


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out_dir = Path(spec["out"])
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, int] = {}
    for case in spec["cases"]:
        name = case["name"]
        results[name] = run_case(case["argv"], out_dir / f"{name}.out", out_dir / f"{name}.err")
        (out_dir / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
