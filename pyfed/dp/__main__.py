"""``python -m pyfed.dp RUN_DIR``: the privacy spent per round of a dp_* run (from its metrics.jsonl)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyfed.dp", description=__doc__)
    ap.add_argument("run_dir", help="a run directory written by `python -m pyfed train --algo dp_...`")
    args = ap.parse_args(argv)
    path = Path(args.run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: is {args.run_dir!r} a pyfed run directory?")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if records and "epsilon" not in records[0]:
        raise ValueError(f"{str(path)!r} has no 'epsilon': not a dp_* run")
    for m in records:
        acc = f"  test acc {m['test_acc']:.4f}" if "test_acc" in m else ""
        spent = f"ε = {m['epsilon']:.4f}  (δ = {m['delta']:g}, σ = {m['noise_multiplier']:.3f})"
        print(f"round {m['round']:4d}  {spent}{acc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
