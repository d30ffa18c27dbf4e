"""Every public entry point with wrong input answers with one clear line that names the
problem (and, where there is one, the fix) — never a deep traceback. One row per case."""
from pathlib import Path

import pytest
import torch

from semlib import (attacks, baselines, claims, curves, data, device, ensemble, io, models, params, runner, scenarios,
                    smoothing, study, training, zoo)

SMOKE = str(Path(__file__).resolve().parent.parent / "params" / "zoo" / "smoke.yaml")
X = torch.rand(2, 3, 32, 32)
Y = torch.zeros(2, dtype=torch.long)
NAMES, FAMS = ["a_s0", "b_s0"], ["a", "b"]


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
    ("shard size 0", lambda t: curves.cached_shards({}, 3, None, t, shard_size=0), ValueError, "shard_size must be >= 1"),
    ("unknown scenario", lambda t: scenarios.scenario("Q"), ValueError, "unknown scenario 'Q'; known: A, B"),
    ("missing data directory", lambda t: data.load_split("test", t / "nowhere"), data.DataNotFoundError, "CIFAR-10 not found. Looked for"),
    ("unknown split", lambda t: data.load_split("val"), ValueError, "split must be 'train' or 'test'"),
    ("epochs 0", lambda t: training.TrainConfig(epochs=0), ValueError, "epochs must be > 0"),
    ("uint8 expected for training", lambda t: training.train(models.build_model("vgg11", width=0.0625), X, Y, training.TrainConfig()), ValueError, "training images must be uint8"),
    ("threshold outside [0, 1]", lambda t: zoo.admitted(None, 20), ValueError, "threshold is a fraction"),
    ("zoo spec not YAML", lambda t: zoo.ZooSpec.from_yaml(_write(t, "z.yaml", "models: [x\n")), ValueError, "is not valid YAML"),
    ("zoo spec unknown key", lambda t: zoo.ZooSpec.from_dict({"name": "x", "sigmas": [0], "models": [], "epoch": 1}), ValueError, "unknown keys ['epoch']"),
    ("zoo spec missing file", lambda t: zoo.ZooSpec.from_yaml(t / "none.yaml"), FileNotFoundError, "presets live in params/zoo"),
    ("missing sub-model", lambda t: zoo.load_submodel(t, "vgg11_s0"), io.CheckpointError, "train the zoo first"),
    ("pickled checkpoint", lambda t: io.load_weights(torch.nn.Linear(1, 1), _write(t, "m.pt", "x")), io.CheckpointError, "only safetensors"),
    ("checkpoint without card", lambda t: io.load_weights(torch.nn.Linear(1, 1), _write(t, "m.safetensors", "x")), io.CheckpointError, "has no card"),
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
    ("untrained baseline", lambda t: baselines.load_baseline("rse", zoo.load_spec(SMOKE), t), io.CheckpointError, "run notebook 02_baselines"),
    ("study on an empty zoo", lambda t: study.Study(SMOKE, study.StudyConfig(), zoo_dir=t), io.CheckpointError, "no trained sub-models"),
    ("claim relation", lambda t: claims.verdict(0.0, 1.0, "<", 0.05), ValueError, "relation must be '>' or '<='"),
    ("study params not a mapping", lambda t: params.check_values({"STUDY": [1]}), ValueError, "STUDY = [1] is not allowed"),
    ("study params bad setting", lambda t: params.check_values({"STUDY": {"eot": 0}}), ValueError, "eot must be an integer >= 1"),
    ("unknown attack in params", lambda t: params.check_values({"ATTACKS": ["bim", "cw"]}), ValueError, "ATTACKS = ['bim', 'cw'] is not allowed"),
    ("unknown executor", lambda t: params.check_values({"EXECUTOR": {"kind": "dask"}}), ValueError, "kind must be 'serial' or 'ray'"),
    ("executor with 0 cpus per task", lambda t: runner.Executor.from_dict({"kind": "ray", "cpus_per_task": 0}), ValueError, "cpus_per_task and num_cpus must be >= 1"),
    ("executor with negative gpus", lambda t: runner.Executor.from_dict({"kind": "ray", "gpus_per_task": -1}), ValueError, "gpus_per_task must be >= 0"),
    ("unknown device", lambda t: device.resolve("gpu0"), ValueError, "device: unknown device 'gpu0'; use auto, cpu, cuda or cuda:N"),
    ("study on a GPU that is not there", lambda t: study.Study(SMOKE, study.StudyConfig(), zoo_dir=t, device="cuda:7"), ValueError, "device: 'cuda:7' asked for, but"),
    ("zoo training on an unsupported device", lambda t: zoo.train_zoo(zoo.load_spec(SMOKE), t, device="meta"), ValueError, "device: device 'meta' is not supported"),
    ("bad certify params", lambda t: params.check_values({"CERT": {"sigma": 0.25, "n0": 0, "n": 10, "alpha": 0.001}}), ValueError, "CERT = "),
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
