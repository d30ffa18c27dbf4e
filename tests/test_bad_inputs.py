"""Every public entry point with wrong input answers with one clear line that names the
problem (and, where there is one, the fix) — never a deep traceback. One row per case."""
from pathlib import Path

import pytest
import torch

from semlib import (attacks, baselines, cache, claims, curves, data, device, ensemble, artifacts, models, params, pipeline, runner,
                    scenarios, smoothing, study, training, zoo)

SMOKE = str(Path(__file__).resolve().parent.parent / "params" / "zoo" / "smoke.yaml")
X = torch.rand(2, 3, 32, 32)
Y = torch.zeros(2, dtype=torch.long)
NAMES, FAMS = ["a_s0", "b_s0"], ["a", "b"]


# billion laughs: 9 levels of 9 aliases each, 9^9 leaves if expanded
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


CASES = [
    ("unknown architecture", lambda t: models.build_model("resnet19"), ValueError, "unknown architecture 'resnet19'; known:"),
    ("zero width", lambda t: models.build_model("vgg11", width=0), ValueError, "width and depth must be > 0"),
    ("bad stem stride", lambda t: models.build_model("vgg11", stem_stride=4), ValueError, "stem_stride must be 1 or 2"),
    ("negative sigma", lambda t: smoothing.NoisyClassifier(torch.nn.Identity(), -0.5), ValueError, "sigma must be a finite number >= 0"),
    ("unknown noise space", lambda t: smoothing.NoisyClassifier(torch.nn.Identity(), 0.5, "latent"), ValueError, "noise_space must be one of"),
    ("inverted K range", lambda t: ensemble.SEMSampler(NAMES, FAMS, (2, 1)), ValueError, "1 <= K_min <= K_max"),
    ("empty K range", lambda t: ensemble.SEMSampler(NAMES, FAMS, (0, 0)), ValueError, "1 <= K_min <= K_max"),
    ("K above collection", lambda t: ensemble.SEMSampler(NAMES, FAMS, (1, 3)), ValueError, "exceeds the collection"),
    ("empty collection", lambda t: ensemble.SEMSampler([], [], (1, 1)), ValueError, "non-zero length"),
    ("negative ensemble weight", lambda t: ensemble.Ensemble([torch.nn.Identity()], weights=[-1.0]), ValueError, "non-negative"),
    ("eps < 0", lambda t: attacks.BIM(steps=1)(torch.nn.Flatten(), X, Y, -0.1), ValueError, "eps must be finite and >= 0"),
    ("eps of wrong shape", lambda t: attacks.BIM(steps=1)(torch.nn.Flatten(), X, Y, torch.ones(3)), ValueError, "eps must be a number or a tensor of shape [2]"),
    ("unknown norm", lambda t: attacks.PGD(norm="l1"), ValueError, "unknown norm 'l1'"),
    ("unknown attack", lambda t: attacks.make_attack("deepfool"), ValueError, "unknown attack 'deepfool'"),
    ("zero steps", lambda t: attacks.BIM(steps=0), ValueError, "steps, eot and chunk must be >= 1"),
    ("query budget below one estimate", lambda t: attacks.NES(max_queries=10, samples=20), ValueError, "max_queries >= 2 * samples"),
    ("pixels above 1", lambda t: smoothing.mc_counts(torch.nn.Flatten(), X + 1, 2), ValueError, "must lie in [0, 1]"),
    ("uint8 images", lambda t: smoothing.mc_counts(torch.nn.Flatten(), (X * 255).byte(), 2), ValueError, "float pixels"),
    ("wrong image shape", lambda t: smoothing.mc_counts(torch.nn.Flatten(), X[:, 0], 2), ValueError, "shape [B, 3, H, W]"),
    ("labels of wrong length", lambda t: attacks.BIM(steps=1)(torch.nn.Flatten(), X, torch.zeros(3, dtype=torch.long), 0.1), ValueError, "labels must have shape [2]"),
    ("targets of wrong length", lambda t: attacks.BIM(steps=1)(torch.nn.Flatten(), X, Y, 0.1, target=torch.zeros(1, dtype=torch.long)), ValueError, "targets must have shape"),
    ("N < 1", lambda t: smoothing.mc_counts(torch.nn.Flatten(), X, 0), ValueError, "n (Monte-Carlo draws) must be an integer >= 1"),
    ("judge N < 1", lambda t: curves.JudgeConfig(n=0), ValueError, "n (Monte-Carlo draws) must be >= 1"),
    ("alpha 0 (predict)", lambda t: smoothing.predict(torch.nn.Flatten(), X, 5, 0.0), ValueError, "alpha must lie in (0, 1)"),
    ("alpha 1 (certify)", lambda t: smoothing.certify(torch.nn.Flatten(), X, 0.25, 2, 5, 1.0), ValueError, "alpha must lie in (0, 1)"),
    ("alpha > 1 (success rule)", lambda t: smoothing.mc_success(torch.ones(2, 3, dtype=torch.long), Y, 1.5), ValueError, "abstention threshold"),
    ("alpha > 1 (judge)", lambda t: curves.JudgeConfig(alpha=2.0), ValueError, "alpha must lie in (0, 1]"),
    ("eps0 = 0", lambda t: curves.SearchConfig(eps0=0.0), ValueError, "eps0 must be > 0"),
    ("empty ASR curve", lambda t: curves.asr_curve([], [0.1]), ValueError, "no examples"),
    ("shard size 0", lambda t: cache.cached_shards({}, 3, None, t, shard_size=0), ValueError, "shard_size must be >= 1"),
    ("unknown scenario", lambda t: scenarios.scenario("Q"), ValueError, "unknown scenario 'Q'; known: A, B"),
    ("missing data directory", lambda t: data.load_split("test", t / "nowhere"), data.DataNotFoundError, "CIFAR-10 not found. Looked for"),
    ("unknown split", lambda t: data.load_split("val"), ValueError, "split must be 'train' or 'test'"),
    ("epochs 0", lambda t: training.TrainConfig(epochs=0), ValueError, "epochs must be > 0"),
    ("uint8 expected for training", lambda t: training.train(models.build_model("vgg11", width=0.0625), X, Y, training.TrainConfig()), ValueError, "training images must be uint8"),
    ("threshold outside [0, 1]", lambda t: zoo.admitted(None, 20), ValueError, "threshold is a fraction"),
    ("zoo spec not YAML", lambda t: zoo.ZooSpec.from_yaml(_write(t, "z.yaml", "models: [x\n")), ValueError, "is not valid YAML"),
    ("zoo spec unknown key", lambda t: zoo.ZooSpec.from_dict({"name": "x", "sigmas": [0], "models": [], "epoch": 1}), ValueError, "unknown keys ['epoch']"),
    ("zoo spec missing file", lambda t: zoo.ZooSpec.from_yaml(t / "none.yaml"), FileNotFoundError, "presets live in params/zoo"),
    ("missing sub-model", lambda t: zoo.load_submodel(t, "vgg11_s0"), artifacts.CheckpointError, "train the zoo first"),
    ("pickled checkpoint", lambda t: artifacts.load_weights(torch.nn.Linear(1, 1), _write(t, "m.pt", "x")), artifacts.CheckpointError, "only safetensors"),
    ("checkpoint without card", lambda t: artifacts.load_weights(torch.nn.Linear(1, 1), _write(t, "m.safetensors", "x")), artifacts.CheckpointError, "has no card"),
    ("unknown preset", lambda t: params.load_params("01_zoo", "laptp"), FileNotFoundError, "no parameters"),
    ("unknown study setting", lambda t: study.StudyConfig.from_dict({"n_image": 3}), ValueError, "unknown setting(s) ['n_image']"),
    ("study N < 1", lambda t: study.StudyConfig.from_dict({"judge_n": 0}), ValueError, "judge_n must be an integer >= 1"),
    ("study alpha outside (0, 1)", lambda t: study.StudyConfig.from_dict({"alpha": 0}), ValueError, "alpha (abstention threshold) must lie in (0, 1)"),
    ("study inverted K range", lambda t: study.StudyConfig.from_dict({"k_range": [4, 1]}), ValueError, "k_range must be [K_min, K_max]"),
    ("curve with a query attack on A", lambda t: study.CurveSpec("A", "nes"), ValueError, "A is attacked with a gradient attack, not 'nes'"),
    ("curve with an unknown goal", lambda t: study.CurveSpec("A", "bim", "untarget"), ValueError, "goal must be one of"),
    ("unknown APGD loss", lambda t: attacks.APGD(loss="cw"), ValueError, "unknown APGD loss 'cw'"),
    ("APGD zero steps", lambda t: attacks.APGD(steps=0), ValueError, "steps and eot must be >= 1"),
    ("baselines without members", lambda t: baselines.BaselineSpec.from_dict({"sigma": 0.25}, zoo.load_spec(SMOKE)), ValueError, "baselines must be a mapping with 'members'"),
    ("baseline member not in zoo", lambda t: baselines.BaselineSpec.from_dict({"members": ["vgg11", "resnet50"]}, zoo.load_spec(SMOKE)), ValueError, "has no architecture 'resnet50'"),
    ("untrained baseline", lambda t: baselines.load_baseline("rse", zoo.load_spec(SMOKE), t), artifacts.CheckpointError, "run notebook 02_baselines"),
    ("study on an empty zoo", lambda t: study.Study(SMOKE, study.StudyConfig(), zoo_dir=t), artifacts.CheckpointError, "no trained sub-models"),
    ("claim relation", lambda t: claims.Claim("k", "t", "f", "s", [("A", "<", "B")], [("bim", "untargeted")]), ValueError, "relation must be one of"),
    ("study params not a mapping", lambda t: params.check_values({"STUDY": [1]}), ValueError, "STUDY = [1] is not allowed"),
    ("study params bad setting", lambda t: params.check_values({"STUDY": {"eot": 0}}), ValueError, "eot must be an integer >= 1"),
    ("unknown attack in params", lambda t: params.check_values({"ATTACKS": ["bim", "cw"]}), ValueError, "ATTACKS = ['bim', 'cw'] is not allowed"),
    ("unknown executor", lambda t: params.check_values({"EXECUTOR": {"kind": "dask"}}), ValueError, "kind must be one of local, serial, ray"),
    ("executor with 0 cpus per task", lambda t: runner.Executor.from_dict({"kind": "ray", "cpus_per_task": 0}), ValueError, "cpus_per_task and num_cpus must be >= 1"),
    ("executor with negative gpus", lambda t: runner.Executor.from_dict({"kind": "ray", "gpus_per_task": -1}), ValueError, "gpus_per_task must be >= 0"),
    ("unknown device", lambda t: device.resolve("gpu0"), ValueError, "device: unknown device 'gpu0'; use auto, cpu, cuda or cuda:N"),
    ("study on a GPU that is not there", lambda t: study.Study(SMOKE, study.StudyConfig(), zoo_dir=t, device="cuda:7"), ValueError, "device: 'cuda:7' asked for, but"),
    ("zoo training on an unsupported device", lambda t: zoo.train_zoo(zoo.load_spec(SMOKE), t, device="meta"), ValueError, "device: device 'meta' is not supported"),
    ("bad certify params", lambda t: params.check_values({"CERT": {"sigma": 0.25, "n0": 0, "n": 10, "alpha": 0.001}}), ValueError, "CERT = "),
    # issue 12: bad values refused before any work starts
    ("NaN images", lambda t: smoothing.mc_counts(torch.nn.Flatten(), X * float("nan"), 2), ValueError, "images contain 6144 NaN or infinite pixel(s)"),
    ("infinite images", lambda t: attacks.BIM(steps=1)(torch.nn.Flatten(), X / 0, Y, 0.1), ValueError, "NaN or infinite pixel(s)"),
    ("empty batch (smoothing)", lambda t: smoothing.mc_counts(torch.nn.Flatten(), X[:0], 2), ValueError, "images: empty batch (0, 3, 32, 32)"),
    ("empty batch (attack)", lambda t: attacks.PGD(steps=1)(torch.nn.Flatten(), X[:0], Y[:0], 0.1), ValueError, "empty batch"),
    ("empty batch (search)", lambda t: curves.search_distortion(attacks.BIM(steps=1), torch.nn.Flatten(), torch.nn.Flatten(), X[:0], Y[:0]), ValueError, "empty batch"),
    ("float64 images", lambda t: attacks.BIM(steps=1)(torch.nn.Flatten(), X.double(), Y, 0.1), ValueError, "images must be float32 pixels in [0, 1] (the models' dtype), got torch.float64; convert with x.float()"),
    ("float16 images", lambda t: smoothing.mc_counts(torch.nn.Flatten(), X.half(), 2), ValueError, "got torch.float16"),
    ("images not a tensor", lambda t: smoothing.mc_counts(torch.nn.Flatten(), X.numpy(), 2), ValueError, "images must be a torch tensor"),
    ("int32 labels", lambda t: attacks.BIM(steps=1)(torch.nn.Flatten(), X, Y.int(), 0.1), ValueError, "labels must be int64 (torch.long) class indices, got dtype torch.int32"),
    ("float labels", lambda t: attacks.NES(max_queries=4, samples=2)(torch.nn.Flatten(), X, Y.float(), 0.1), ValueError, "labels must be int64"),
    ("labels not a tensor", lambda t: attacks.APGD(steps=1, eot=1)(torch.nn.Flatten(), X, [0, 0], 0.1), ValueError, "labels must be a torch tensor"),
    ("label 10 on CIFAR-10", lambda t: attacks.BIM(steps=1)(torch.nn.Flatten(), X, torch.tensor([0, 10]), 0.1), ValueError, "labels must be class indices in 0..9, got min 0, max 10"),
    ("negative label", lambda t: attacks.PGD(steps=1)(torch.nn.Flatten(), X, torch.tensor([-1, 3]), 0.1), ValueError, "labels must be class indices in 0..9, got min -1"),
    ("int32 targets", lambda t: attacks.BIM(steps=1)(torch.nn.Flatten(), X, Y, 0.1, target=Y.int()), ValueError, "targets must be int64"),
    ("labels of wrong length (search)", lambda t: curves.search_distortion(attacks.BIM(steps=1), torch.nn.Flatten(), torch.nn.Flatten(), X, Y[:1]), ValueError, "labels must have shape [2] to match the images, got (1,)"),
    ("targets out of range (search)", lambda t: curves.search_distortion(attacks.BIM(steps=1), torch.nn.Flatten(), torch.nn.Flatten(), X, Y, torch.tensor([3, 12])), ValueError, "targets must be class indices in 0..9"),
    ("labels beyond the counts' classes", lambda t: smoothing.mc_success(torch.ones(2, 3, dtype=torch.long), torch.tensor([0, 5])), ValueError, "labels must be class indices in 0..2, got min 0, max 5"),
    ("float labels (success rule)", lambda t: smoothing.mc_success(torch.ones(2, 3, dtype=torch.long), Y.float()), ValueError, "labels must be int64"),
    ("float counts (success rule)", lambda t: smoothing.mc_success(torch.ones(2, 3), Y), ValueError, "counts must be an integer tensor [B, C]"),
    ("eps NaN", lambda t: attacks.BIM(steps=1)(torch.nn.Flatten(), X, Y, torch.tensor([0.1, float("nan")])), ValueError, "eps must be finite and >= 0"),
    ("eps as text", lambda t: attacks.BIM(steps=1)(torch.nn.Flatten(), X, Y, "0.1"), ValueError, "eps must be a number or a tensor of shape [2], got str"),
    ("sigma inf", lambda t: smoothing.NoisyClassifier(torch.nn.Identity(), float("inf")), ValueError, "sigma must be a finite number >= 0, got inf"),
    ("sigma NaN", lambda t: smoothing.NoisyClassifier(torch.nn.Identity(), float("nan")), ValueError, "sigma must be a finite number >= 0, got nan"),
    ("sigma as text", lambda t: smoothing.NoisyClassifier(torch.nn.Identity(), "0.25"), ValueError, "sigma must be a finite number >= 0, got '0.25'"),
    ("sigma NaN (certify)", lambda t: smoothing.certify(torch.nn.Flatten(), X, float("nan"), 2, 5, 0.01), ValueError, "sigma must be a finite number >= 0"),
    ("alpha as text (predict)", lambda t: smoothing.predict(torch.nn.Flatten(), X, 5, "0.01"), ValueError, "alpha must lie in (0, 1)"),
    ("eps0 inf", lambda t: curves.SearchConfig(eps0=float("inf")), ValueError, "eps0 must be > 0 and finite, got inf"),
    ("eps0 as text", lambda t: curves.SearchConfig(eps0="0.01"), ValueError, "eps0 must be > 0 and finite, got '0.01'"),
    ("search steps as text", lambda t: curves.SearchConfig(search_steps="10"), ValueError, "search_steps must be >= 1 and binary_steps >= 0 (integers)"),
    ("search tol NaN", lambda t: curves.SearchConfig(tol=float("nan")), ValueError, "tol must be a finite number >= 0"),
    ("judge N as text", lambda t: curves.JudgeConfig(n="100"), ValueError, "n (Monte-Carlo draws) must be >= 1, got '100'"),
    ("judge alpha NaN", lambda t: curves.JudgeConfig(alpha=float("nan")), ValueError, "alpha must lie in (0, 1]"),
    ("eps grid with NaN", lambda t: curves.asr_curve([0.1], [0.0, float("nan")]), ValueError, "eps_grid must be a 1-D list of finite budgets >= 0"),
    ("steps as text", lambda t: attacks.BIM(steps="5"), ValueError, "steps, eot and chunk must be >= 1, got '5'"),
    ("step ratio NaN", lambda t: attacks.PGD(step_ratio=float("nan")), ValueError, "step_ratio must be a finite number > 0, got nan"),
    ("NES eta 0", lambda t: attacks.NES(eta=0.0), ValueError, "eta must be a finite number > 0"),
    ("SPSA samples as text", lambda t: attacks.SPSA(samples="25"), ValueError, "samples must be an integer >= 1, got '25'"),
    ("APGD rho 2", lambda t: attacks.APGD(rho=2.0), ValueError, "rho must be a finite number >= 0 and <= 1"),
    ("EPS_ZOOM inf in params", lambda t: params.check_values({"EPS_ZOOM": float("inf")}, "p.yaml"), ValueError, "p.yaml: EPS_ZOOM = inf is not allowed; expected a finite number > 0"),
    ("EPS_ZOOM NaN in params", lambda t: params.check_values({"EPS_ZOOM": float("nan")}, "p.yaml"), ValueError, "EPS_ZOOM = nan is not allowed"),
    ("EPS_ZOOM above STUDY eps_max", lambda t: params.check_values({"EPS_ZOOM": 0.2, "STUDY": {"eps_max": 0.1}}, "p.yaml"), ValueError, "EPS_ZOOM = 0.2 is above STUDY eps_max = 0.1"),
    ("STUDY eps0 inf", lambda t: params.check_values({"STUDY": {"eps0": float("inf")}}, "p.yaml"), ValueError, "p.yaml: STUDY eps0 = inf is not allowed; expected a finite number"),
    ("STUDY eps0 above eps_max", lambda t: params.check_values({"STUDY": {"eps0": 0.2, "eps_max": 0.1}}, "p.yaml"), ValueError, "STUDY eps0 = 0.2 is above eps_max = 0.1"),
    ("STUDY number as text", lambda t: params.check_values({"STUDY": {"judge_n": "20"}}, "p.yaml"), ValueError, "p.yaml: STUDY judge_n = '20' is not allowed; expected an integer; '20' is text: write 20 without quotes"),
    ("number as text in params", lambda t: params.check_values({"THRESHOLD": "0.2"}, "p.yaml"), ValueError, "p.yaml: THRESHOLD = '0.2' is not allowed; expected a fraction in [0, 1]; '0.2' is text: write 0.2 without quotes"),
    ("exponent YAML reads as text", lambda t: params.check_values({"EPS_ZOOM": "1e-2"}, "p.yaml"), ValueError, "'1e-2' is text to YAML (an exponent needs a dot, 1.0e-2): write 0.01"),
    ("CERT sigma inf", lambda t: params.check_values({"CERT": {"sigma": float("inf"), "n0": 2, "n": 10, "alpha": 0.001}}), ValueError, "sigma (finite, > 0)"),
    ("ROBUST unknown defense", lambda t: params.check_values({"ROBUST": {"images": 4, "budgets": [["linf", 0.03]], "steps": 2, "eot": 1, "targets": 1, "defenses": ["Z"]}}), ValueError, "defenses (some of SEM"),
    ("ROBUST bad norm", lambda t: params.check_values({"ROBUST": {"images": 4, "budgets": [["l1", 0.03]], "steps": 2, "eot": 1, "targets": 1, "defenses": ["SEM"]}}), ValueError, "ROBUST = "),
    ("CONVERGENCE zero steps", lambda t: params.check_values({"CONVERGENCE": {"images": 4, "eps": 0.03, "steps": [0, 2], "eots": [1], "at_steps": 2, "at_eot": 1, "attacks": ["apgd-ce"], "defenses": ["SEM"]}}), ValueError, "CONVERGENCE = "),
    ("CONVERGENCE joint pair of one", lambda t: params.check_values({"CONVERGENCE": {"images": 4, "eps": 0.03, "steps": [1, 2], "eots": [1], "at_steps": 2, "at_eot": 1, "attacks": ["apgd-ce"], "defenses": ["SEM"], "joint": [[20]]}}), ValueError, "joint"),
    ("CONVERGENCE joint same passes", lambda t: params.check_values({"CONVERGENCE": {"images": 4, "eps": 0.03, "steps": [1, 2], "eots": [1], "at_steps": 2, "at_eot": 1, "attacks": ["apgd-ce"], "defenses": ["SEM"], "joint": [[20, 4], [40, 2]]}}), ValueError, "distinct products"),
    ("CONVERGENCE plateau of one", lambda t: params.check_values({"CONVERGENCE": {"images": 4, "eps": 0.03, "steps": [1, 2], "eots": [1], "at_steps": 2, "at_eot": 1, "attacks": ["apgd-ce"], "defenses": ["SEM"], "plateau": [800]}}), ValueError, "plateau ([steps, eot])"),
    ("CONVERGENCE plateau not STRONGEST's", lambda t: params.check_values({"CONVERGENCE": {"images": 4, "eps": 0.03, "steps": [1, 2], "eots": [1], "at_steps": 2, "at_eot": 1, "attacks": ["apgd-ce"], "defenses": ["SEM"], "plateau": [8, 4]}, "STRONGEST": {"images": 4, "eps": 0.03, "steps": 8, "eot": 2, "attacks": ["apgd-ce"], "defenses": ["SEM"]}}, "p.yaml"), ValueError, "p.yaml: CONVERGENCE plateau (budget, eps, attacks) ([8, 4], 0.03, ['apgd-ce']) is not STRONGEST's ([8, 2], 0.03, ['apgd-ce'])"),
    ("robust eps negative", lambda t: __import__("semlib.robust").robust.RobustConfig(eps=-0.1), ValueError, "eps must be a finite budget"),
    ("APGD success on BIM", lambda t: __import__("semlib.attacks").attacks.BIM(steps=1)(torch.nn.Flatten(), torch.rand(1, 3, 32, 32), torch.tensor([0]), 0.1, success=lambda x, i: x), ValueError, "does not judge its iterates"),
    ("CERT sigma NaN", lambda t: params.check_values({"CERT": {"sigma": float("nan"), "n0": 2, "n": 10, "alpha": 0.001}}), ValueError, "CERT = "),
    ("CERT sigma negative", lambda t: params.check_values({"CERT": {"sigma": -0.25, "n0": 2, "n": 10, "alpha": 0.001}}), ValueError, "CERT = "),
    ("YAML alias bomb", lambda t: params.load_yaml(_write(t, "bomb.yaml", BOMB)), ValueError, "uses more than 32 YAML aliases (*name); write the values out"),
    ("recursive YAML anchor", lambda t: params.load_yaml(_write(t, "loop.yaml", "a: &a [1, *a]\n")), ValueError, "is a recursive YAML document"),
    ("missing notebook", lambda t: pipeline.run_notebook(t / "99_none.ipynb", "smoke"), FileNotFoundError, "99_none.ipynb not found; notebooks: 00_data.ipynb, 01_zoo.ipynb"),
]


@pytest.mark.parametrize("name, call, exc, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(name, call, exc, fragment, tmp_path, monkeypatch):
    monkeypatch.delenv("SEMLIB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data, no params/ here
    with pytest.raises(exc) as info:
        call(tmp_path)
    msg = str(info.value)
    assert fragment in msg, msg
    assert "\n" not in msg, "one line"
    assert info.value.__cause__ is None or isinstance(info.value, data.DataNotFoundError)
