import pytest
import torch
from torch import nn

from recognizer.models import (
    UnknownModelError,
    WeightLoadError,
    create_model,
    list_models,
    load_pretrained,
)

# REFERENCES.md, "Model reference parameter counts" (trainable parameters): per model and
# builder keywords, {classes: count}.
REFERENCE_TABLE = [
    ("r3d18", {}, {400: 33_409_104, 3: 33_205_443, 5: 33_206_469, 7: 33_207_495}),
    ("r3d18", {"stem": "torchvision"}, {400: 33_371_472}),
    ("p3d63", {}, {400: 25_745_232, 3: 24_931_779, 5: 24_935_877, 7: 24_939_975}),
    ("d3d121", {}, {400: 11_696_528, 3: 11_289_603, 5: 11_291_653, 7: 11_293_703}),
    ("i3d", {}, {400: 12_697_264, 3: 12_290_339, 5: 12_292_389, 7: 12_294_439}),
]
REFERENCE_COUNTS = [
    (name, kwargs, classes, count)
    for name, kwargs, counts in REFERENCE_TABLE
    for classes, count in counts.items()
]


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(("name", "kwargs", "classes", "expected"), REFERENCE_COUNTS)
def test_reference_parameter_counts(name, kwargs, classes, expected) -> None:
    with torch.device("meta"):
        model = create_model(name, classes, **kwargs)
    assert _trainable(model) == expected


def _tiny_input(name: str) -> torch.Tensor:
    return torch.randn(2, 3, 28, 28) if name == "ststnet" else torch.randn(2, 3, 8, 32, 32)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_parameter_gets_a_gradient(name: str) -> None:
    model = create_model(name, 3)
    out = model(_tiny_input(name))
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"{name}: parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_uniform_interface(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name, 4)
        x = _tiny_input(name)
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        model.reset_classifier(6)
        logits = model.forward_head(features)
    assert pooled.shape == (2, model.num_features)
    assert logits.shape == (2, 6)
    assert model.default_cfg.num_classes == 6
    cfg = model.default_cfg
    assert len(cfg.mean) == len(cfg.std) == cfg.input_size[0]
    assert cfg.input_scale in ("unit", "symmetric")


def test_forward_is_features_then_head() -> None:
    model = create_model("r3d18", 3, widths=(4, 8, 8, 16), dropout=0.5).eval()
    x = _tiny_input("r3d18")
    assert torch.allclose(model.forward_head(model.forward_features(x)), model(x))


def test_r3d_feature_shapes_at_reference_size() -> None:
    with torch.device("meta"):
        model = create_model("r3d18", 400)
        x = torch.empty(1, 3, 16, 224, 224)
        stem = model.maxpool(model.act(model.bn1(model.conv1(x))))
        l2 = model.layer2(model.layer1(stem))
        l4 = model.layer4(model.layer3(l2))
    assert tuple(model.conv1(x).shape[1:]) == (64, 16, 112, 112)
    assert tuple(stem.shape[1:]) == (64, 8, 56, 56)
    assert tuple(l2.shape[1:]) == (128, 4, 28, 28)
    assert tuple(l4.shape[1:]) == (512, 1, 7, 7)


def test_ststnet_features_at_28() -> None:
    model = create_model("ststnet", 3)
    assert model.forward_features(torch.randn(2, 3, 28, 28)).shape == (2, 16, 5, 5)
    with pytest.raises(ValueError, match="apex flow"):
        model(torch.randn(2, 3, 4, 28, 28))


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(UnknownModelError, match="r3d18") as err:
        create_model("resnet3d", 3)
    assert "i3d" in str(err.value) and "resnet3d" in str(err.value)


def test_builder_variants_by_keyword() -> None:
    model = create_model("r3d18", 2, widths=(4, 8, 8, 16), norm_layer=nn.Identity)
    assert model.fc.in_features == 16
    assert not any(isinstance(m, nn.BatchNorm3d) for m in model.modules())
    with pytest.raises(ValueError, match="stem"):
        create_model("r3d18", 2, stem="c3d")


def _torchvision_names(state: dict) -> dict:
    """Rename this R3D's keys the way torchvision's r3d_18 spells them."""
    out = {}
    for key, value in state.items():
        new = key.replace("conv1.", "stem.0.", 1) if key.startswith("conv1.") else key
        new = new.replace("bn1.", "stem.1.", 1) if key.startswith("bn1.") else new
        if key.startswith("layer"):
            for i in (1, 2):
                new = new.replace(f".conv{i}.", f".conv{i}.0.").replace(f".bn{i}.", f".conv{i}.1.")
        out["module." + new] = value
    return out


def test_load_torchvision_r3d_file_skips_classifier_of_other_class_count(tmp_path) -> None:
    small = {"widths": (4, 8, 8, 16), "stem": "torchvision"}
    source = create_model("r3d18", 400, **small)
    path = tmp_path / "r3d_18.pth"
    torch.save(_torchvision_names(source.state_dict()), path)
    target = create_model("r3d18", 5, **small)
    fc_before = target.fc.weight.clone()
    report = load_pretrained(target, path)
    assert report.skipped_classifier and not report.unexpected and not report.missing
    assert torch.equal(target.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert torch.equal(target.bn1.running_var, source.bn1.running_var)
    assert torch.equal(target.fc.weight, fc_before)


def test_load_piergiaj_i3d_names_and_conv_logits(tmp_path) -> None:
    source = create_model("i3d", 7)
    state = {}
    for key, value in source.state_dict().items():
        if key.startswith("fc."):
            shaped = value.view(*value.shape, 1, 1, 1) if value.ndim == 2 else value
            state["logits.conv3d." + key[3:]] = shaped
        else:
            state[key.removeprefix("features.")] = value
    path = tmp_path / "rgb_imagenet.pt"
    torch.save(state, path)
    target = create_model("i3d", 7)
    report = load_pretrained(target, path, strict=True)
    assert not report.skipped_classifier
    assert torch.equal(target.fc.weight, source.fc.weight)
    assert torch.equal(target.features.Mixed_5c.b1b.conv3d.weight,
                       source.features.Mixed_5c.b1b.conv3d.weight)  # fmt: skip


def test_load_hara_densenet_legacy_names(tmp_path) -> None:
    source = create_model("d3d121", 3)
    state = {}
    for key, value in source.state_dict().items():
        key = key.replace("features.conv1.", "features.conv0.").replace(
            "features.norm1.", "features.norm0."
        )
        for part in ("norm1", "norm2", "conv1", "conv2"):
            key = key.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")
        state[key] = value
    path = tmp_path / "densenet-121-kinetics.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, "arch": "x"}, path)
    target = create_model("d3d121", 3)
    load_pretrained(target, path, strict=True)
    assert torch.equal(target.features.conv1.weight, source.features.conv1.weight)
    block = target.features.denseblock4.denselayer16
    assert torch.equal(block.conv2.weight, source.features.denseblock4.denselayer16.conv2.weight)


def test_weight_file_of_another_model_is_rejected(tmp_path) -> None:
    path = tmp_path / "i3d.pt"
    torch.save(create_model("ststnet", 3).state_dict(), path)
    with pytest.raises(WeightLoadError, match="does not fit"):
        load_pretrained(create_model("r3d18", 3, widths=(4, 8, 8, 16)), path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_pretrained(create_model("ststnet", 3), tmp_path / "missing.pt")
