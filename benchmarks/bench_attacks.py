"""Attack-engine benchmarks (issue 3), printed as ratios measured in one run. Run with nothing
else busy, after the laptop zoo exists:

    SEMLIB_DATA=... .venv/bin/python benchmarks/bench_attacks.py [--json out.json]

1. EOT-PGD on a 3-model Gaussian-smoothed ensemble (DenseNet100-, ResNet- and WRN-style laptop
   models at sigma 0.25; 128 images, EOT 8, 5 steps, fp32): our engine versus torchattacks'
   EOTPGD, then our engine in bf16 with the cosine between bf16 and fp32 EOT gradients.
2. Monte-Carlo judging: draws actually spent by the exact early stop versus N for the same
   verdicts, and judging throughput (images x draws / s) versus plain batched inference.
3. A whole ASR curve (exponential 10 + binary 20 steps): our vectorized evaluator versus a
   naive per-image loop of the same definition: model evaluations and wall time.
"""
from __future__ import annotations

import argparse
import time

import torch

from semlib import artifacts, layout
from semlib.attacks import BIM, PGD, eot_gradient
from semlib.curves import JudgeConfig, SearchConfig, mc_verdict, search_distortion
from semlib.data import eval_subset
from semlib.ensemble import Ensemble
from semlib.smoothing import mc_counts
from semlib.zoo import default_dir, load_submodel

MEMBERS = ("densenet100_s0.25", "resnet18_s0.25", "wrn28_10_s0.25")


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_eot(x, y, report):
    import torchattacks

    zoo = default_dir("laptop")
    ens = Ensemble([load_submodel(zoo, n) for n in MEMBERS], names=MEMBERS).eval()
    eps, steps, eot = 8 / 255, 5, 8
    alpha = 1.5 * eps / steps
    ref = torchattacks.EOTPGD(ens, eps=eps, alpha=alpha, steps=steps, eot_iter=eot, random_start=True)
    torch.manual_seed(0)
    _, t_ref = _timed(lambda: ref(x, y))
    plain = PGD(steps=steps, eot=eot, chunk=len(x))
    _, t_plain = _timed(lambda: plain(ens, x, y, eps, generator=torch.Generator().manual_seed(0)))
    ours = PGD(steps=steps, eot=eot, chunk=len(x), channels_last=True)
    with layout.channels_last(ens):  # same weights, channels_last layout (strided 1x1 kept NCHW)
        _, t_ours = _timed(lambda: ours(ens, x, y, eps, generator=torch.Generator().manual_seed(0)))
    report["eot_pgd"] = {"cpu_capability": layout.cpu_capability(), "torchattacks_s": t_ref,
                         "ours_fp32_contiguous_s": t_plain, "speedup_fp32_contiguous": t_ref / t_plain,
                         "ours_fp32_s": t_ours, "speedup_fp32": t_ref / t_ours}
    line = (f"EOT-PGD (3 smoothed members, {len(x)} images, EOT {eot}, {steps} steps, CPU {layout.cpu_capability()}): "
            f"torchattacks {t_ref:.1f} s, ours fp32 {t_plain:.1f} s ({t_ref / t_plain:.2f}x), fp32 channels_last "
            f"{t_ours:.1f} s ({t_ref / t_ours:.2f}x)")
    if layout.bf16_available():  # bf16 only where the CPU has it natively (~50x slower elsewhere)
        ours_bf16 = PGD(steps=steps, eot=eot, chunk=len(x), bf16=True, channels_last=True)
        with layout.channels_last(ens):
            _, t_bf16 = _timed(lambda: ours_bf16(ens, x, y, eps, generator=torch.Generator().manual_seed(0)))
        g32 = eot_gradient(ens, x, y, eot=64, chunk=len(x), generator=torch.Generator().manual_seed(1))
        g16 = eot_gradient(ens, x, y, eot=64, chunk=len(x), generator=torch.Generator().manual_seed(1), bf16=True)
        cos = torch.nn.functional.cosine_similarity(g32.flatten(1), g16.flatten(1))
        report["eot_pgd"].update(ours_bf16_s=t_bf16, speedup_bf16=t_ref / t_bf16,
                                 cos_bf16_fp32_median=float(cos.median()), cos_bf16_fp32_min=float(cos.min()))
        line += (f", bf16 channels_last {t_bf16:.1f} s ({t_ref / t_bf16:.2f}x); cosine(bf16, fp32 gradient) "
                 f"median {float(cos.median()):.3f}, min {float(cos.min()):.3f}")
    print(line, flush=True)
    return ens


def bench_mc(ens, x, y, report, n=100):
    # judge adversarial-ish images (a weak attack) so that verdicts are mixed
    adv = BIM(steps=5)(ens, x, y, 4 / 255, generator=torch.Generator().manual_seed(2)).x_adv
    (ok, draws), t_mc = _timed(lambda: mc_verdict(ens, adv, y, None, JudgeConfig(n=n, alpha=0.3),
                                                  torch.Generator().manual_seed(3)))
    full, t_full = _timed(lambda: mc_counts(ens, adv, n, generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        flat = adv.repeat(4, 1, 1, 1)
        _, t_plain = _timed(lambda: [ens(flat[s:s + 256]) for s in range(0, len(flat), 256)])
    plain_rate = len(flat) / t_plain
    judged_rate = int(draws.sum()) / t_mc
    report["mc"] = {"n": n, "images": len(x), "draws_spent": int(draws.sum()), "draws_full": n * len(x),
                    "draw_ratio": n * len(x) / int(draws.sum()), "success_rate": float(ok.float().mean()),
                    "judge_img_draws_per_s": judged_rate, "plain_inference_img_per_s": plain_rate,
                    "throughput_ratio": judged_rate / plain_rate, "full_count_s": t_full, "early_stop_s": t_mc}
    print(f"Monte-Carlo judging (N={n}, {len(x)} images): {int(draws.sum())} draws instead of {n * len(x)} "
          f"({n * len(x) / int(draws.sum()):.1f}x fewer), {t_full / t_mc:.1f}x faster than the full count; "
          f"throughput {judged_rate:.0f} vs plain inference {plain_rate:.0f} img/s ({judged_rate / plain_rate:.2f})")


def naive_search(attack, model, x, y, search, n, gen):
    """The same definition, one image at a time, every judgement with all n votes and all
    binary steps (the reference for the vectorized evaluator). Returns distortions, evaluations."""
    from semlib.smoothing import mc_counts, mc_success

    def judge(img, label):
        counts = mc_counts(model, img, n, generator=gen)
        return bool(mc_success(counts, label, 0.3)[0]), n

    out, evals = [], 0
    for i in range(len(x)):
        xi, yi = x[i:i + 1], y[i:i + 1]
        ok, d = judge(xi, yi)
        evals += d
        if ok:
            out.append(0.0)
            continue
        lo, hi, best, found = 0.0, search.eps0, float("nan"), False
        for _ in range(search.search_steps):
            adv = attack(model, xi, yi, hi, None, gen).x_adv
            ok, d = judge(adv, yi)
            evals += attack.steps * attack.eot + d
            if ok:
                best, found = float((adv - xi).abs().max()), True
                break
            lo, hi = hi, 2 * hi
        if found:
            for _ in range(search.binary_steps):
                mi = (lo + hi) / 2
                adv = attack(model, xi, yi, mi, None, gen).x_adv
                ok, d = judge(adv, yi)
                evals += attack.steps * attack.eot + d
                if ok:
                    hi, best = mi, min(best, float((adv - xi).abs().max()))
                else:
                    lo = mi
        out.append(best)
    return out, evals


def bench_curve(x, y, report, tol=1 / 255 / 16):
    """(a) a deterministic model: identical results within tol, evaluations and wall time;
    (b) a smoothed model judged with N = 100: evaluations (the exact early stop and tol)."""
    zoo = default_dir("laptop")
    search_full = SearchConfig(eps0=1 / 255, search_steps=10, binary_steps=20)
    search_tol = SearchConfig(eps0=1 / 255, search_steps=10, binary_steps=20, tol=tol)
    attack = BIM(steps=10)
    model = load_submodel(zoo, "resnet18_s0")
    df, t_vec = _timed(lambda: search_distortion(attack, model, model, x, y, search=search_tol,
                                                 judge=JudgeConfig(n=1)))
    vec_evals = int(df.gradients.sum() + df.judge_draws.sum())
    (naive, naive_evals), t_naive = _timed(lambda: naive_search(attack, model, x, y, search_full, 1, None))
    got, ref = torch.tensor(df.distortion.values), torch.tensor(naive)
    both_nan = got.isnan() & ref.isnan()
    max_diff = float((got - ref).abs()[~both_nan].max()) if bool((~both_nan).any()) else 0.0
    same = bool((got.isnan() == ref.isnan()).all()) and max_diff <= 2 * tol
    report["curve_deterministic"] = {
        "images": len(x), "tol": tol, "vectorized_s": t_vec, "naive_s": t_naive, "time_ratio": t_naive / t_vec,
        "vectorized_evals": vec_evals, "naive_evals": naive_evals, "eval_ratio": naive_evals / vec_evals,
        "max_abs_diff": max_diff, "identical_within_tol": same}
    print(f"ASR curve, deterministic ResNet-18 ({len(x)} images, 10+20 search steps, BIM-10, tol {tol:.2e}): "
          f"vectorized {t_vec:.1f} s vs per-image {t_naive:.1f} s ({t_naive / t_vec:.1f}x); image passes "
          f"{vec_evals} vs {naive_evals} ({naive_evals / vec_evals:.2f}x); max |diff| {max_diff:.2e} "
          f"(identical within 2 tol: {same})")
    smooth = load_submodel(zoo, "resnet18_s0.25")
    xs, ys = x[:20], y[:20]
    g = torch.Generator().manual_seed(5)
    df_s, t_s = _timed(lambda: search_distortion(BIM(steps=10, eot=4), smooth, smooth, xs, ys, search=search_tol,
                                                 judge=JudgeConfig(n=100), generator=g))
    ev_s = int(df_s.gradients.sum() + df_s.judge_draws.sum())
    (naive_s, naive_ev_s), t_ns = _timed(lambda: naive_search(BIM(steps=10, eot=4), smooth, xs, ys, search_full, 100,
                                                              torch.Generator().manual_seed(6)))
    report["curve_smoothed"] = {"images": len(xs), "n": 100, "vectorized_s": t_s, "naive_s": t_ns,
                                "time_ratio": t_ns / t_s, "vectorized_evals": ev_s, "naive_evals": naive_ev_s,
                                "eval_ratio": naive_ev_s / ev_s}
    print(f"ASR curve, smoothed ResNet-18 sigma 0.25, N=100 votes ({len(xs)} images, BIM-10 x EOT 4): "
          f"vectorized {t_s:.1f} s vs per-image {t_ns:.1f} s ({t_ns / t_s:.1f}x); image passes {ev_s} vs "
          f"{naive_ev_s} ({naive_ev_s / ev_s:.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--curve-images", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(2)
    x, y, _ = eval_subset(max(args.images, args.curve_images))
    report: dict = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    ens = bench_eot(x[: args.images], y[: args.images], report)
    bench_mc(ens, x[: args.images], y[: args.images], report)
    bench_curve(x[: args.curve_images], y[: args.curve_images], report)
    if args.json:
        artifacts.write_json(args.json, report)


if __name__ == "__main__":
    main()
