"""Studies: curve specs, settings, targets, caching and determinism of curves, on the shipped
laptop zoo with tiny attack settings."""
import pandas as pd
import pytest
import torch

from semlib import certification, layout, shards, study as st
from semlib.scenarios import SCENARIOS
from semlib.smoothing import NoisyClassifier
from semlib.study import CurveSpec, Study, StudyConfig, asr_table, random_targets, specs, summary_table

TINY = dict(n_images=3, steps=1, eot=1, judge_n=2, search_steps=2, binary_steps=1, query_budget=4, query_samples=2,
            apgd_steps=2, apgd_eot=1, eps0=0.02, shard_size=2)


@pytest.fixture(scope="module")
def laptop(data_dir, tmp_path_factory):
    return Study("laptop", StudyConfig.from_dict(TINY), threshold=0.2, data_dir=data_dir,
                 cache_dir=tmp_path_factory.mktemp("curves"))


@pytest.mark.parametrize("args, msg", [
    (("Z", "bim"), "unknown scenario 'Z'"),
    (("A", "deepfool"), "unknown attack 'deepfool'"),
    (("A", "bim", "both"), "goal must be one of"),
    (("A", "bim", "untargeted", "sem_k9"), "variant must be one of"),
    (("E", "bim"), "E is attacked with a score-based attack"),
    (("A", "nes"), "A is attacked with a gradient attack"),
    (("RSE", "spsa"), "RSE is attacked with a gradient attack"),
])
def test_bad_curve_specs(args, msg):
    with pytest.raises(ValueError, match=msg):
        CurveSpec(*args)


def test_labels_derive_from_the_variants_settings(laptop):
    """A label is derived from its variant's settings, never parsed back; claims select curves
    by (scenario, variant)."""
    spec = CurveSpec("A", "bim", variant="sem_k68")
    assert laptop.label(spec) == "A (K 6..8)"
    other = StudyConfig.from_dict({**TINY, "k_range_large": [5, 7]})
    assert st.label(spec, other) == "A (K 5..7)" and st.label(CurveSpec("A", "bim"), other) == "A"
    assert st.label(CurveSpec("H", "bim", variant="sem_k68"), other) == "H"  # H faces no SEM
    v = laptop.add_variant("two", sorted(laptop.collection())[:2], (1, 2))
    assert v == "custom:two" and laptop.label(CurveSpec("A", "pgd", variant=v)) == "A (two)"
    assert laptop.variant(v).k_range(laptop.cfg) == (1, 2) and laptop.collection(v) == sorted(laptop.collection())[:2]
    with pytest.raises(ValueError, match="unknown SEM variant 'custom:nope'"):
        laptop.collection("custom:nope")


def test_seeds_keep_the_names_they_were_first_keyed_under():
    """Renamed fields (CurveSpec.defense -> scenario, StudyConfig.single_arch -> contrast_arch)
    keep their old names in keys and seeds, so no curve is re-seeded by a rename."""
    spec = CurveSpec("G", "pgd", "targeted", "sem_wrn")
    assert spec.key() == {"defense": "G", "attack": "pgd", "goal": "targeted", "variant": "sem_wrn"}
    assert CurveSpec.from_key(spec.key()) == spec
    fields = StudyConfig(contrast_arch="vgg11").curve_fields("bim")
    assert fields["single_arch"] == "vgg11" and "contrast_arch" not in fields
    assert set(fields) == {"norm", "steps", "eot", "judge_n", "alpha", "eps0", "search_steps", "binary_steps",
                           "period", "pool", "half_seed", "seed", "k_range", "k_range_large", "single_arch"}


def test_labels_and_spec_lists():
    assert CurveSpec("A", "bim", variant="sem_k68").label == "A (K 6..8)"
    assert CurveSpec("SEM", "apgd", variant="sem_wrn").label == "SEM (WRN SEM)"
    assert CurveSpec("F", "bim").label == "F"
    got = specs("AB", ["bim", "pgd"], ["untargeted"])
    assert [(s.scenario, s.attack) for s in got] == [("A", "bim"), ("B", "bim"), ("A", "pgd"), ("B", "pgd")]


@pytest.mark.parametrize("raw, msg", [
    ({"n_image": 3}, r"unknown setting\(s\) \['n_image'\]"),
    ({"judge_n": 0}, "judge_n must be an integer >= 1"),
    ({"alpha": 1.0}, r"alpha \(abstention threshold\) must lie in \(0, 1\)"),
    ({"k_range": [3, 1]}, "k_range must be"),
    ({"norm": "l1"}, "norm must be 'linf' or 'l2'"),
    ({"query_budget": 10, "query_samples": 25}, "query_budget"),
    ({"eps0": 0}, "eps0 must be > 0"),
    ({"steps": 5, "period": 5}, r"period \(5\) must be below steps \(5\)"),
    ({"pool": 0}, "pool must be an integer >= 1"),
])
def test_bad_study_settings(raw, msg):
    with pytest.raises(ValueError, match=msg):
        StudyConfig.from_dict(raw)


def test_curve_keys_hold_only_what_the_attack_uses():
    a, b = StudyConfig(), StudyConfig(apgd_steps=7, query_budget=100, eps_max=0.5, n_images=9)
    assert a.curve_fields("bim") == b.curve_fields("bim")  # other attacks' and plot settings are left out
    assert a.curve_fields("apgd") != b.curve_fields("apgd") and a.curve_fields("nes") != b.curve_fields("nes")
    assert "steps" not in a.curve_fields("nes") and "apgd_eot" in a.curve_fields("apgd")


def test_random_targets_differ_from_labels_and_follow_the_image():
    y = torch.arange(10).repeat(5)
    ids = torch.arange(50) * 7
    t = random_targets(y, ids, seed=0)
    assert (t != y).all() and t.min() >= 0 and t.max() <= 9
    assert torch.equal(random_targets(y[10:20], ids[10:20], 0), t[10:20])  # a subset keeps its targets
    assert not torch.equal(random_targets(y, ids, 1), t)


def test_collections_and_defenses(laptop, data_dir, tmp_path):
    sem = laptop.collection("sem")
    t = laptop.table
    assert sorted(sem) == sorted(t[t.sigma.isin([0.0, 0.25, 0.75, 1.5])].name)  # every zoo member passes 0.2
    strict = Study("laptop", laptop.cfg, threshold=0.4, data_dir=data_dir, cache_dir=tmp_path)
    assert "alexnet_s1.5" not in strict.collection("sem") and "alexnet_s0" in strict.collection("sem")  # ACA 0.32
    wrn = laptop.collection("sem_wrn")
    assert len(wrn) == 7 and all(n.startswith("wrn28_10_s") for n in wrn)
    assert laptop.defenses("sem").k_range == (1, 4) and laptop.defenses("sem_k68").k_range == (6, 8)
    certified = certification.certifiable(laptop, 0.25)
    sem_c = certified["SEM"]
    assert isinstance(sem_c, NoisyClassifier) and sem_c.sigma == 0.25
    assert all(m.sigma == 0 for m in sem_c.base.members)  # one shared noise draw, none per member


def test_curves_are_cached_and_deterministic(laptop, data_dir, tmp_path, monkeypatch):
    spec = [CurveSpec("G", "bim"), CurveSpec("H", "pgd", "targeted")]
    first = laptop.curves(spec, progress=False)
    assert len(first) == 2 * 3 and set(first.label) == {"G", "H"}
    assert first.distortion.notna().any()
    calls = []
    real = shards.search_distortion
    monkeypatch.setattr(shards, "search_distortion", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = laptop.curves(spec, progress=False)
    assert calls == [] and again.equals(first)  # every shard came from the cache
    fresh = Study("laptop", laptop.cfg, threshold=0.2, data_dir=data_dir, cache_dir=tmp_path / "other")
    fresh.curves(spec, progress=False)
    a = sorted(p.read_bytes() for p in laptop.cache_dir.glob("*.csv"))
    b = sorted(p.read_bytes() for p in (tmp_path / "other").glob("*.csv"))
    assert a == b, "same seed and settings: byte-identical curve CSVs"
    other_seed = Study("laptop", StudyConfig.from_dict({**TINY, "seed": 1}), threshold=0.2, data_dir=data_dir,
                       cache_dir=tmp_path / "seed1")
    moved = other_seed.curves([CurveSpec("H", "pgd", "targeted")], progress=False)
    assert not torch.equal(other_seed.targets, laptop.targets) or not moved.equals(first[first.label == "H"])


def test_every_curve_of_a_defense_shares_its_clean_verdicts(data_dir, tmp_path, monkeypatch):
    """Clean correctness is judged once per defense and image (its votes seeded by the judging
    model, not the curve): attackers A-E all face the SEM, so their curves agree on which clean
    images the SEM gets right, as do F and J; the judge is noisy (4 votes), so without the shared
    seed they disagree."""
    cfg = StudyConfig.from_dict({**TINY, "n_images": 8, "judge_n": 4, "search_steps": 1, "binary_steps": 0,
                                 "shard_size": 8})
    s = Study("laptop", cfg, threshold=0.2, data_dir=data_dir, cache_dir=tmp_path)
    rows = s.curves([CurveSpec("A", "bim"), CurveSpec("B", "pgd", "targeted"), CurveSpec("C", "mim"),
                     CurveSpec("E", "nes"), CurveSpec("F", "bim"), CurveSpec("J", "spsa", "targeted")], progress=False)
    clean = rows.pivot_table(index="example", columns="scenario", values="clean_correct", aggfunc="first")
    assert all(clean[c].equals(clean["A"]) for c in "BCE") and clean["J"].equals(clean["F"])
    monkeypatch.setattr(Study, "clean_generator", lambda self, spec, sl: None)  # the curve's own votes
    own = [r.clean_correct for r in shards.compute(s, [CurveSpec(a, "bim") for a in "ABCD"], [slice(0, 8)] * 4,
                                                   [lambda rows: rows] * 4)]
    assert not all(o.equals(own[0]) for o in own[1:])  # the check above can fail


def test_curves_do_not_depend_on_the_shard_size(data_dir, tmp_path):
    """Every vote, EOT sample, random start and ensemble draw comes from its image's own
    request streams (semlib.streams), seeded by the curve, not the shard: one shard of 4 images,
    four of 1, or four of 1 computed as one block give the same rows (the models see other
    batches: equal up to rounding, which flips nothing here)."""
    specs_ = [CurveSpec("A", "bim"), CurveSpec("B", "pgd", "targeted"), CurveSpec("E", "nes"), CurveSpec("G", "mim")]
    layouts = {"4": (4, 100), "1": (1, 1), "1 in a block of 4": (1, 4)}  # (shard_size, block)
    rows = {k: Study("laptop", StudyConfig.from_dict({**TINY, "n_images": 4, "judge_n": 6, "shard_size": s, "block": b}),
                     threshold=0.2, data_dir=data_dir, cache_dir=tmp_path / k).curves(specs_, progress=False)
            for k, (s, b) in layouts.items()}
    cols = ["example", "distortion", "clean_correct", "judge_draws", "gradients", "queries"]
    for k in ("1", "1 in a block of 4"):
        pd.testing.assert_frame_equal(rows[k][cols], rows["4"][cols], check_exact=False, rtol=1e-6)
    assert rows["4"].distortion.gt(0).sum() >= 2
    assert len(list((tmp_path / "1 in a block of 4").glob("*.csv"))) == 4 * len(specs_)  # stored shard by shard


def test_channels_last_attacks_and_judges_through_the_layout_guard(laptop, data_dir, tmp_path):
    """STUDY channels_last: the shard's models run channels_last inside layout.channels_last
    (loaded frozen, so no layer is kept NCHW) and are contiguous again afterwards; results agree
    with the contiguous run up to rounding (the binary search can move by one step on an image)."""
    assert laptop.cfg.channels_last  # the default
    flat_cfg = StudyConfig.from_dict({**TINY, "channels_last": False})
    spec = CurveSpec("I", "bim")
    assert flat_cfg.curve_fields() == laptop.cfg.curve_fields()  # the layout seeds nothing ...
    flat = Study("laptop", flat_cfg, threshold=0.2, data_dir=data_dir, cache_dir=tmp_path)
    specs_ = [CurveSpec("I", "bim"), CurveSpec("G", "pgd")]
    cl = laptop
    assert flat.seed_config(spec) == cl.seed_config(spec) and flat.key_config(spec) != cl.key_config(spec)  # ... but keys
    a, b = flat.curves(specs_, progress=False), cl.curves(specs_, progress=False)
    assert a.clean_correct.equals(b.clean_correct) and (a.distortion.fillna(-1) == b.distortion.fillna(-1)).mean() >= 0.5
    model = cl.submodel(cl.spec.submodel(cl.cfg.contrast_arch, 0.0).name)
    assert all(p.is_contiguous() for p in model.parameters())
    assert not any(p.requires_grad for p in model.parameters())  # loaded for evaluation: frozen
    assert not any(layout.guarded(m) for m in model.modules()) and any(layout.exposed(m) for m in model.modules())
    with pytest.raises(ValueError, match="channels_last must be true or false"):
        StudyConfig.from_dict({"channels_last": "yes"})


def test_tables(laptop):
    rows = laptop.curves([CurveSpec("I", "bim")], progress=False)
    tab = asr_table(rows, laptop.eps_grid(5))
    assert list(tab.eps) == pytest.approx([0, 0.025, 0.05, 0.075, 0.1])
    assert (tab.asr.diff().dropna() >= 0).all() and (tab.lo <= tab.asr).all() and (tab.asr <= tab.hi).all()
    summ = summary_table(rows, [0.05])
    assert summ.loc[0, "images"] == 3 and 0 <= summ.loc[0, "asr@0.05"] <= 1
    assert isinstance(summ, pd.DataFrame)


def test_clean_rows_and_certificates(laptop):
    d = laptop.defenses()
    clean = certification.clean_rows(laptop, {"I": d.single_plain}, progress=False)
    assert len(clean) == 3 and clean.judge_draws.eq(1).all()  # deterministic: one vote each
    cert = certification.certify_rows(laptop, {"G": certification.certifiable(laptop, 0.25)["G"]}, 0.25, 2, 8, 0.01, progress=False)
    assert len(cert) == 3 and (cert.radius >= 0).all() and ((cert.prediction == -1) | (cert.radius > 0)).all()


def test_certified_sem_draws_from_the_given_generator(laptop):
    """The shared-noise SEM's ensemble draws follow the generator (regression: they used the
    global RNG, so its certificates changed from run to run)."""
    from semlib.smoothing import mc_counts

    sem = certification.certifiable(laptop, 0.25)["SEM"]
    x = laptop.x[:2]
    a = mc_counts(sem, x, 16, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(123)  # the global RNG must not matter
    b = mc_counts(sem, x, 16, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_a_curve_is_keyed_by_the_checkpoints_it_uses(laptop):
    """Retraining a model recomputes only the curves that use it, with the same random numbers."""
    i_key, a_key = laptop.key_config(CurveSpec("I", "bim")), laptop.key_config(CurveSpec("A", "bim"))
    assert list(i_key["models"]) == [laptop.spec.submodel(laptop.cfg.contrast_arch, 0.0).name]
    assert sorted(a_key["models"]) == sorted(laptop.collection("sem"))  # attacker A and the SEM: the collection
    rse = laptop.key_config(CurveSpec("RSE", "bim"))
    assert list(rse["models"]) == ["baselines/rse"]
    seeds = laptop.seed_config(CurveSpec("A", "bim"))
    member = sorted(a_key["models"])[0]
    saved = laptop.loaded._fingerprint[member]
    try:
        laptop.loaded._fingerprint[member] = "retrained"
        assert laptop.key_config(CurveSpec("I", "bim")) == i_key  # unused: same key, cache reused
        assert laptop.key_config(CurveSpec("A", "bim")) != a_key  # used: a new key ...
        assert laptop.seed_config(CurveSpec("A", "bim")) == seeds  # ... with the same draws
    finally:
        laptop.loaded._fingerprint[member] = saved
    with pytest.raises(RuntimeError, match="no loaded checkpoint"):
        laptop.checkpoints(torch.nn.Linear(2, 2))


def test_a_curve_key_names_the_checkpoints_its_models_use(laptop):
    """Keys come from the spec alone (no weights loaded); they name exactly the checkpoints whose
    weights the attacker's and the judge's models hold, for every scenario and variant."""
    every = [CurveSpec(s, "nes" if SCENARIOS[s].query else "bim", variant=v) for s in SCENARIOS
             for v in ("sem", "sem_k68", "sem_wrn")] + [CurveSpec(b, "bim") for b in ("RSE", "ADP", "SEM")]
    for spec in every:
        assert laptop.checkpoint_names(spec) == sorted(laptop.checkpoints(*laptop.models_for(spec))), spec


def test_baselines_trained_after_the_study_was_made_are_keyed(laptop, data_dir, tmp_path):
    """Notebook 02 makes its Study, then trains RSE and ADP (regression: their hashes were read
    only when the Study was made, so a fresh zoo failed with KeyError 'baselines/rse')."""
    src = laptop.zoo_dir
    for p in src.glob("*.*"):
        (tmp_path / p.name).symlink_to(p)
    s = Study("laptop", laptop.cfg, zoo_dir=tmp_path, threshold=0.2, data_dir=data_dir, cache_dir=tmp_path / "c")
    (tmp_path / "baselines").mkdir()
    for p in (src / "baselines").glob("*.*"):
        (tmp_path / "baselines" / p.name).symlink_to(p)
    assert s.key_config(CurveSpec("RSE", "bim"))["models"] == laptop.key_config(CurveSpec("RSE", "bim"))["models"]
