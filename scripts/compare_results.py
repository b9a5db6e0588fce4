"""Compare two builds' chapter metrics: which numbers changed between them.

usage: python scripts/compare_results.py BEFORE_RESULTS_DIR AFTER_RESULTS_DIR

Each folder holds <chapter>/metrics.json (e.g. _build/results/cpu). Timings (keys
naming seconds, speed or wall/CPU time) differ run to run and are listed apart; every
other number must be equal for a refactor to count as "behaviour unchanged".
"""
import json
import re
import sys
from pathlib import Path

TIMING = re.compile(r"second|per_s|tokens_per|wall|cpu_|_ms|speed|time|throughput|ratio|instructions|ticks",
                    re.IGNORECASE)


def flatten(x, prefix=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, x


def load(folder: Path) -> dict:
    out = {}
    for path in sorted(folder.glob("*/metrics.json")):
        for key, value in flatten(json.loads(path.read_text())):
            out[f"{path.parent.name}:{key}"] = value
    return out


def main(before_dir, after_dir) -> int:
    before, after = load(Path(before_dir)), load(Path(after_dir))
    changed, timing = [], []
    for key in sorted(set(before) & set(after)):
        if before[key] != after[key]:
            (timing if TIMING.search(key) else changed).append(f"{key}: {before[key]!r} -> {after[key]!r}")
    only_before = sorted(set(before) - set(after))
    only_after = sorted(set(after) - set(before))
    print(f"{len(set(before) & set(after))} numbers in both builds; {len(changed)} changed, "
          f"{len(timing)} timings differ; {len(only_before)} only before, {len(only_after)} only after")
    for title, rows in (("changed", changed), ("only before", only_before), ("only after", only_after)):
        if rows:
            print(f"\n## {title}")
            print("\n".join(rows))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
