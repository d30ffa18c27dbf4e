import pytest
import torch

from semlib.models import ARCHITECTURES, FAMILIES, Classifier, Normalize, build_model, family_of

TABLE1_FAMILIES = {"densenet", "wrn", "resnet", "vgg", "alexnet", "inceptionv3", "mobilenetv2", "resnext", "googlenet"}
TABLE1_ARCHS = {"densenet100", "densenet121", "densenet161", "densenet169", "wrn28_10", "resnet18", "resnet34",
                "resnet50", "vgg11", "vgg13", "vgg16", "vgg19", "alexnet", "inceptionv3", "mobilenetv2",
                "resnext29", "googlenet"}


def test_registry_covers_table1():
    assert set(FAMILIES) == TABLE1_FAMILIES
    assert set(ARCHITECTURES) == TABLE1_ARCHS


@pytest.mark.parametrize("arch", sorted(TABLE1_ARCHS))
@pytest.mark.parametrize("stem_stride", [1, 2])
def test_every_family_shape_and_gradients(arch, stem_stride):
    torch.manual_seed(0)
    model = build_model(arch, width=0.125, depth=0.25, stem_stride=stem_stride, num_classes=10).train()
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    out = model(x)
    assert out.shape == (4, 10)
    out.logsumexp(1).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"


@pytest.mark.parametrize("arch", sorted(TABLE1_ARCHS))
def test_normalization_is_first_layer(arch):
    model = build_model(arch, width=0.125, depth=0.25, stem_stride=2).eval()
    assert isinstance(model, Classifier) and isinstance(model.normalize, Normalize)
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), model.body((x - mean) / std), atol=1e-5)
    assert model.family == family_of(arch)


def test_width_and_depth_knobs_shrink_models():
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    full = n(build_model("resnet18"))
    assert 11.0e6 < full < 11.4e6  # the published CIFAR ResNet-18
    assert n(build_model("resnet18", width=0.5)) < full / 3
    assert n(build_model("resnet18", depth=0.5)) < full


def test_unknown_architecture_lists_known():
    with pytest.raises(ValueError, match=r"unknown architecture 'resnet19'; known: .*resnet18"):
        build_model("resnet19")


@pytest.mark.parametrize("kw", [{"width": 0}, {"depth": -1}, {"stem_stride": 3}])
def test_bad_knobs(kw):
    with pytest.raises(ValueError):
        build_model("vgg11", **kw)


@pytest.mark.parametrize("arch", ["resnet18", "vgg11", "mobilenetv2", "densenet121", "inceptionv3"])
def test_folding_batchnorm_keeps_the_function_and_its_input_gradients(arch):
    from semlib.layout import fold_batchnorm

    torch.manual_seed(0)
    model = build_model(arch, width=0.25, depth=0.25, stem_stride=2)
    for m in model.modules():  # trained-looking statistics, so a wrong fold would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    count = lambda m: sum(isinstance(q, torch.nn.BatchNorm2d) for q in m.modules())  # noqa: E731
    before = count(model)
    assert count(fold_batchnorm(model.train())) == before  # a training model is left alone
    model.eval()
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    ref = model(x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    folded = fold_batchnorm(model)
    assert count(folded) < before
    out = folded(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4) and torch.allclose(g, g_ref, atol=1e-4, rtol=1e-3)
