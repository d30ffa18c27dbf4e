"""Byte-identity of the redesign (issue 13): run this file with one checkout's semlib on the path,
then with another's, on the same machine, and compare the CSVs it writes.

    PYTHONPATH=<old checkout> python benchmarks/redesign_identity.py /tmp/ident/before
    PYTHONPATH=<new checkout> python benchmarks/redesign_identity.py /tmp/ident/after

It computes, on the shipped laptop zoo and 4 images (laptop STUDY otherwise), 16 curves that go
through every code path a figure uses — attackers A-E, contrasts F-J, both goals, BIM/MIM/PGD,
NES/SPSA, APGD, the K 6..8 and WRN variants, RSE and ADP — plus clean MC accuracy of the SEM,
F, G and five smoothed sub-models and Cohen certificates of the shared-noise SEM, F and G.
Single-threaded, so the two runs do not compete for cores. (The pre-redesign API is
reached by the fallback branch.)
"""
import hashlib
import sys
import time
from pathlib import Path

import torch

from semlib.scenarios import Defended
from semlib.study import CurveSpec, Study, StudyConfig

torch.set_num_threads(1)
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
cfg = StudyConfig(n_images=4, steps=5, eot=2, judge_n=20, search_steps=6, binary_steps=3, query_budget=200,
                  query_samples=10, apgd_steps=20, apgd_eot=4, eps_max=0.1, shard_size=4)
study = Study("laptop", cfg, threshold=0.2, cache_dir=out / "cache")
curve_specs = [CurveSpec(d, "bim") for d in "ABCDFGHI"] + [
    CurveSpec("E", "nes"), CurveSpec("J", "spsa"), CurveSpec("A", "mim", "targeted"),
    CurveSpec("A", "bim", variant="sem_k68"), CurveSpec("A", "pgd", variant="sem_wrn"), CurveSpec("RSE", "bim"),
    CurveSpec("ADP", "bim"), CurveSpec("SEM", "apgd")]
start = time.perf_counter()
study.curves(curve_specs, progress=False).to_csv(out / "curves.csv", index=False)
smoothed = [n for n in study.collection() if study.submodel(n).sigma > 0][:5]
try:  # after the redesign
    from semlib import certification as c
    models = {k: v for k, v in c.clean_models(study).items() if k[0] != "submodel" or k[1] in smoothed}
    clean = c.clean_rows(study, models, progress=False)
    cert = c.certify_rows(study, c.certifiable(study, 0.25), 0.25, 8, 32, 0.01, progress=False)
except (ImportError, AttributeError):  # before it
    d = study.defenses()
    models = {"SEM": d.models[Defended.SEM], "F": d.models[Defended.ENSEMBLE_SMOOTHED],
              "G": d.models[Defended.SINGLE_SMOOTHED], **{f"single smoothed {n}": study.submodel(n) for n in smoothed}}
    clean = study.clean_rows(models, progress=False)
    cert = study.certify_rows(study.certifiable(0.25), 0.25, 8, 32, 0.01, progress=False)
clean.to_csv(out / "clean.csv", index=False)
cert.to_csv(out / "cert.csv", index=False)
print(f"{time.perf_counter() - start:.0f} s;", *(f"{f} {hashlib.sha256((out / f).read_bytes()).hexdigest()[:16]}"
                                                 for f in ("curves.csv", "clean.csv", "cert.csv")))
