"""What the laptop preset's evidence costs at best (issue 17's "<= 60 minutes on 2 cores"): the
work recorded in a preset's committed output tables, priced in FLOPs and divided by the machine's
fp32 GEMM ceiling, gives the wall time of an engine that ran every sub-model call at the ceiling.

Every per-image row the notebooks write records its work: ``gradients`` (input-gradient passes on
the model the attacker works on, each an EOT sample), ``queries`` (score queries of it) and
``judge_draws`` (Monte-Carlo votes of the defended model). Rows are counted once per computation
(a curve shared by two notebooks, or a robust row that two sweeps list, is computed once). Each
row's FLOPs are its counts times the FLOPs of one request of its models, counted with
``torch.utils.flop_counter`` (a SEM's expectation over its draws, exact: members weighted by their
inclusion probabilities); a gradient pass is priced as two forwards, the convention of
``bench_batches.Calls`` (a convolution's backward costs about two forwards, so the true work is
larger: a lower bound).

``--validate`` first checks the pricing against the FLOPs the sub-models actually execute
(``bench_batches.Calls``) on a few small curves computed here. The ceiling is timed unless
``--ceiling`` gives one measured idle (``bench_member_ceiling.py``); time it with nothing else busy:

    .venv/bin/python benchmarks/bench_laptop_work.py [--preset laptop] [--validate] [--ceiling GFLOPS] [--json benchmarks/results/laptop_work_<kind>.json]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench_batches import Calls, _flops_per_image, gemm_ceiling
from semlib import explore, layout, robust
from semlib.ensemble import HeldDraws, StochasticEnsemble
from semlib.params import load_params
from semlib.scenarios import scenario
from semlib.study import CurveSpec, Study

CURVE_TABLES = {"02_baselines": "distortions", "03_whitebox_transfer": "distortions",
                "04_query_blackbox": "distortions", "05_ensemble_strategy": "distortions",
                "06_certify_sem": "distortions", "06b_adaptive": "distortions", "08_explore": "grid"}
ROBUST_TABLES = {"robust": "every attack", "convergence": "apgd-ce", "strongest": "apgd-ce"}
CURVE_KEY = ["scenario", "attack", "goal", "variant", "example"]
SMALL = dict(n_images=2, steps=3, eot=2, judge_n=20, search_steps=3, binary_steps=1, query_budget=40)  # --validate's curves
QUERY_SCENARIOS = tuple(n for n in "ABCDEFGHIJKLM" if scenario(n).query)  # E, J-M
ROBUST_KEY = ["label", "norm", "eps", "steps", "eot", "attacks", "example"]


def forward_gflop(model: torch.nn.Module) -> float:
    """GFLOP of one request (row) of ``model``'s forward pass. A SEM (or an attacker's view of
    one, :class:`HeldDraws`) draws its members per request: its expectation, exact, is the sum of
    its members' FLOPs weighted by their inclusion probabilities; other models are counted on
    one row (their FLOPs do not depend on their noise)."""
    model = model.sem if isinstance(model, HeldDraws) else model
    if isinstance(model, StochasticEnsemble):
        p = model.sampler.inclusion().tolist()
        return sum(pi * forward_gflop(m) for pi, m in zip(p, model.members))
    if id(model) not in _COUNTED:  # the zoo's sub-models are loaded once and shared by every defense
        _COUNTED[id(model)] = (model, _flops_per_image(model) / 1e9)
    return _COUNTED[id(model)][1]


_COUNTED: dict[int, tuple[torch.nn.Module, float]] = {}  # id -> (the model, kept alive; its GFLOP per row)


def curve_gflop(rows: pd.DataFrame, prices: dict[tuple, tuple[float, float]]) -> np.ndarray:
    """GFLOP of each curve row: its gradient passes (two forwards each) and queries of the attacked
    model, its votes of the judging one (``prices``: :func:`curve_prices`)."""
    a, j = (np.array(p) for p in zip(*[prices[k] for k in zip(rows.scenario, rows.variant)]))
    return (2 * rows.gradients + rows.queries.fillna(0)).to_numpy() * a + rows.judge_draws.to_numpy() * j


def robust_gflop(rows: pd.DataFrame, prices: dict[str, float]) -> pd.Series:
    """GFLOP of each robust row: its EOT gradient passes (two forwards each) and votes of its defense."""
    return (2 * rows.gradients + rows.judge_draws) * rows.label.map(prices)


@contextlib.contextmanager
def fresh_cache():
    """``SEMLIB_CACHE`` in a new temporary folder for the duration (nothing reused; spawned workers
    inherit it), restored afterwards."""
    before = os.environ.get("SEMLIB_CACHE")
    try:
        with tempfile.TemporaryDirectory() as cache:
            os.environ["SEMLIB_CACHE"] = cache
            yield cache
    finally:
        if before is None:
            os.environ.pop("SEMLIB_CACHE", None)
        else:
            os.environ["SEMLIB_CACHE"] = before


def curve_prices(study: Study, keys: pd.DataFrame) -> dict[tuple, tuple[float, float]]:
    """(scenario, variant) -> GFLOP of one request of (the model attacked, the model judging);
    neither depends on the attack or the goal."""
    prices = {}
    for key in keys.itertuples(index=False, name=None):
        name, variant = key
        if name == "submodel":  # 06's certificates of one sub-model
            prices[key] = (forward_gflop(study.submodel(variant)),) * 2
            continue
        if variant.startswith("custom:"):  # 08's SEMs, rebuilt from their names (explore.Settings.name)
            k, sig, archs = variant[len("custom:"):].split(" ")
            settings = explore.Settings(k_range=tuple(int(v) for v in k[1:].split("-")),
                                        sigmas=tuple(float(s) for s in sig[1:].split(",")),
                                        archs=() if archs == "all" else tuple(archs.split(",")))
            variant = explore.variant_for(study, settings)
        attack = "nes" if name in QUERY_SCENARIOS else "bim"
        attacked, judged = study.models_for(CurveSpec(name, attack, "untargeted", variant))
        prices[key] = price = (forward_gflop(attacked), forward_gflop(judged))
        print("priced", key, [round(p, 4) for p in price], flush=True)
    return prices


def curve_work(root: Path, preset: str, study: Study) -> tuple[pd.DataFrame, dict]:
    parts = []
    for nb, table in CURVE_TABLES.items():
        path = root / "outputs" / nb / preset / f"tab_{table}.csv"
        if path.is_file():
            parts.append(pd.read_csv(path).assign(notebook=nb))
    rows = pd.concat(parts, ignore_index=True)  # 06's certificates have votes only: NaN work is none
    rows = rows.fillna({"gradients": 0, "queries": 0, "judge_draws": 0}).drop_duplicates(CURVE_KEY)
    keys = rows[["scenario", "variant"]].drop_duplicates().reset_index(drop=True)
    prices = curve_prices(study, keys)
    rows["gflop"] = curve_gflop(rows, prices)
    return rows, {"|".join(k): [round(a, 4), round(j, 4)] for k, (a, j) in prices.items()}


def robust_work(root: Path, preset: str, study: Study) -> tuple[pd.DataFrame, dict]:
    parts = []
    for table, attacks in ROBUST_TABLES.items():
        path = root / "outputs" / "06b_adaptive" / preset / f"tab_{table}_rows.csv"
        if path.is_file():
            parts.append(pd.read_csv(path).assign(attacks=attacks, table=table))
    rows = pd.concat(parts, ignore_index=True).drop_duplicates(ROBUST_KEY)
    models = robust.defense_models(study, sorted(rows.label.unique()))
    prices = {n: forward_gflop(m) for n, m in models.items()}
    rows["gflop"] = robust_gflop(rows, prices)
    return rows, prices


def strongest_extra(root: Path, preset: str, prices: dict[str, float], images: int) -> float:
    """GFLOP that 06b's STRONGEST table would add at ``images`` images: its rows' per-image mean
    (every row, also those the convergence sweep shares) times the images it lacks."""
    path = root / "outputs" / "06b_adaptive" / preset / "tab_strongest_rows.csv"
    if not path.is_file():
        return 0.0
    rows = pd.read_csv(path)
    have = rows.groupby("label").size().min()
    gflop = float(robust_gflop(rows, prices).sum())
    return gflop * max(images / have - 1, 0.0)


class SplitCalls(Calls):
    """:class:`Calls` that also keeps the FLOPs of calls with a gradient apart."""

    def __init__(self):
        super().__init__()
        self.grad_flops = 0.0

    def _hook(self, module, args, out) -> None:
        before = self.flops
        super()._hook(module, args, out)
        if torch.is_grad_enabled():
            self.grad_flops += self.flops - before


VALIDATE = [CurveSpec("A", "bim", "untargeted"), CurveSpec("C", "pgd", "targeted"), CurveSpec("D", "bim", "untargeted"),
            CurveSpec("E", "nes", "untargeted"), CurveSpec("F", "bim", "untargeted")]


def validate(study: Study, specs: list[CurveSpec] = VALIDATE) -> list[dict]:
    """Priced FLOPs of small curves against the FLOPs their sub-models executed (hooks). Each
    curve is priced before its hooks are set (pricing runs the networks too)."""
    out = []
    for spec in specs:
        prices = curve_prices(study, pd.DataFrame([[spec.scenario, spec.variant]]))
        (a, _), = prices.values()
        attacked, judged = study.models_for(spec)
        calls = SplitCalls()
        calls.watch([attacked, judged])
        rows = study.curve(spec, n_images=2)
        grad = float((2 * rows.gradients).sum() * a)
        priced = float(curve_gflop(rows, prices).sum())
        out.append({"curve": f"{spec.scenario} {spec.attack} {spec.goal}", "priced_gflop": round(priced, 2),
                    "executed_gflop": round(calls.flops / 1e9, 2), "ratio": round(priced / max(calls.flops / 1e9, 1e-9), 3),
                    "priced_gradient_gflop": round(grad, 2), "executed_gradient_gflop": round(calls.grad_flops / 1e9, 2)})
        print("validate", json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--validate", action="store_true")
    ap.add_argument("--strongest-images", type=int, default=500,
                    help="also price 06b's STRONGEST table at this many images (per-image mean of the rows it has)")
    ap.add_argument("--ceiling", type=float, help="GFLOP/s measured idle (e.g. bench_member_ceiling's) instead of timing it now")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    ceiling = args.ceiling or gemm_ceiling()
    print(f"GEMM ceiling {ceiling:.1f} GFLOP/s ({layout.cpu_capability()}, 2 threads)", flush=True)
    study = Study.from_params(load_params("08_explore", args.preset), n_images=2)
    checks = []
    if args.validate:
        with fresh_cache():
            checks = validate(Study.from_params(load_params("03_whitebox_transfer", args.preset), **SMALL))
    curves, curve_price = curve_work(args.root, args.preset, study)
    robust_rows, robust_price = robust_work(args.root, args.preset, study)
    per = curves.groupby("notebook").gflop.sum().to_dict()
    per.update({f"06b {t}": g for t, g in robust_rows.groupby("table").gflop.sum().items()})
    total = sum(per.values())
    extra = strongest_extra(args.root, args.preset, robust_price, args.strongest_images)
    minutes = {k: round(v / ceiling / 60, 1) for k, v in per.items()}
    out = {"cpu_capability": layout.cpu_capability(), "torch": torch.__version__, "preset": args.preset,
           "gemm_ceiling_gflop_per_s": round(ceiling, 1), "validation": checks,
           "tflop": {k: round(v / 1e3, 1) for k, v in per.items()}, "tflop_total": round(total / 1e3, 1),
           "minutes_at_ceiling": minutes, "minutes_at_ceiling_total": round(total / ceiling / 60, 1),
           f"strongest_at_{args.strongest_images}_images_extra_minutes_at_ceiling": round(extra / ceiling / 60, 1),
           "request_gflop": {"curves (attacked, judging)": curve_price,
                             "robust": {k: round(v, 4) for k, v in robust_price.items()}},
           "rows": {"curves": len(curves), "robust": len(robust_rows)}}
    print(json.dumps({k: v for k, v in out.items() if k != "request_gflop"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
