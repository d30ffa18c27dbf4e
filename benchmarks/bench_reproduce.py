"""Where `make reproduce` spends its time (issue 4's one-hour goal for the laptop preset).

    .venv/bin/python benchmarks/bench_reproduce.py --preset laptop --json benchmarks/results/reproduce_laptop.json

runs every notebook through papermill (as `make reproduce` does) with an empty curve cache
(the zoo and the baselines are reused, as shipped) and reports the wall time per notebook and
per curve: a curve's time is the gap between the completion of its cached shard and the one
before it in the same notebook (the cache writes each shard's manifest last). With
`--summarize LOG` it only summarizes an earlier run from its log (`[semlib] ... done in N s`)
and the cache's manifests. Run it with nothing else busy.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def notebook_times(log: str) -> dict[str, float]:
    return {Path(m.group(1)).stem: float(m.group(2)) for m in re.finditer(r"\[semlib\] (\S+) done in (\d+) s", log)}


def curve_times(cache: Path, until: float = float("inf")) -> pd.DataFrame:
    """One row per cached shard finished before ``until``: its spec and the seconds since the
    previous shard finished."""
    rows = []
    for manifest in cache.glob("*.json"):
        if manifest.stat().st_mtime > until:
            continue
        config = json.loads(manifest.read_text())["config"]
        spec = config.get("curve") or {"defense": config.get("clean") or config.get("certify"), "attack": "clean" if
                                       "clean" in config else "certify", "goal": "-", "variant": "-"}
        rows.append({**spec, "finished": manifest.stat().st_mtime})
    df = pd.DataFrame(rows).sort_values("finished").reset_index(drop=True)
    df["seconds"] = df.finished.diff()
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--summarize", help="log of an earlier run: summarize it instead of running")
    ap.add_argument("--json")
    args = ap.parse_args()
    cache = ROOT / "cache" / "curves" / args.preset
    until = float("inf")
    if args.summarize:
        log = Path(args.summarize).read_text()
        until = Path(args.summarize).stat().st_mtime  # the run's end: later cache entries are not its own
    else:
        from semlib.pipeline import run_notebook

        shutil.rmtree(cache, ignore_errors=True)
        lines = []
        for nb in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
            start = time.perf_counter()
            run_notebook(nb, args.preset)
            lines.append(f"[semlib] {nb} done in {time.perf_counter() - start:.0f} s")
        log = "\n".join(lines)
    per_nb = notebook_times(log)
    curves = curve_times(cache, until)
    first = curves.seconds.isna()
    curves = curves[~first]  # the first shard's start is not recorded
    by_attacker = curves.groupby(["defense", "variant"]).seconds.sum().sort_values(ascending=False)
    by_attack = curves.groupby("attack").seconds.sum().sort_values(ascending=False)
    out = {"preset": args.preset, "total_seconds": sum(per_nb.values()), "notebooks": per_nb,
           "curves": len(curves) + int(first.sum()), "seconds_by_attacker": by_attacker.round(1).to_dict(),
           "seconds_by_attack": by_attack.round(1).to_dict()}
    out["seconds_by_attacker"] = {f"{k[0]} {k[1]}": v for k, v in out["seconds_by_attacker"].items()}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
