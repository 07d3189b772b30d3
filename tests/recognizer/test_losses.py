import pytest
import torch
import torch.nn.functional as F

from recognizer.remedies import UnknownRemedyError, create_remedy, list_remedies
from recognizer.remedies.losses import FocalLoss, class_balanced_weights, weighted_focal_loss


@pytest.mark.parametrize(
    ("beta", "expected"),
    [(0.999, [1.057480, 0.699313, 1.243206]), (0.9999, [1.101240, 0.515568, 1.383192])],
)
def test_class_balanced_weights_worked_example(beta, expected) -> None:
    weights = class_balanced_weights([803, 1801, 634], beta)
    assert torch.allclose(weights, torch.tensor(expected), atol=1e-6)
    assert weights.sum().item() == pytest.approx(3.0)


def test_class_balanced_weights_limits_and_bad_input() -> None:
    assert torch.allclose(class_balanced_weights([5, 50, 500], 0.0), torch.ones(3))
    with pytest.raises(ValueError, match="beta"):
        class_balanced_weights([1, 2], 1.0)
    with pytest.raises(ValueError, match=r"classes \[1\]"):
        class_balanced_weights([3, 0, 2], 0.9)


def test_weighted_loss_is_batch_mean_not_divided_by_summed_weights() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 0.0, 3.0]])
    target = torch.tensor([0, 1, 1])
    weight = torch.tensor([1.0, 3.0, 0.5])
    ce = F.cross_entropy(logits, target, reduction="none")
    expected = (weight[target] * ce).sum() / 3
    assert weighted_focal_loss(logits, target, weight).item() == pytest.approx(expected.item())
    torch_weighted = F.cross_entropy(logits, target, weight=weight)
    assert not torch.isclose(weighted_focal_loss(logits, target, weight), torch_weighted)


def test_focal_factor_by_hand() -> None:
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([0, 0])
    p = torch.softmax(logits, dim=1)[torch.arange(2), target]
    expected = ((1 - p) ** 2 * -torch.log(p)).mean()
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    assert FocalLoss()(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target).item()
    )


def test_remedies_by_name() -> None:
    counts = [803, 1801, 634]
    cb = create_remedy("cb", beta=0.9999).criterion(counts)
    assert torch.allclose(cb.weight, class_balanced_weights(counts, 0.9999))
    cb_focal = create_remedy("cb_focal").criterion(counts)
    assert cb_focal.gamma == 2.0 and cb_focal.weight is not None
    assert create_remedy("none").criterion(counts).weight is None
    samplers = {name: create_remedy(name).sampler for name in ("none", "cb", "resample")}
    assert samplers == {"none": "shuffle", "cb": "shuffle", "resample": "class_uniform"}
    assert create_remedy("class_uniform").sampler == "class_uniform"
    assert create_remedy("oversample").sampler == "oversample"
    assert create_remedy("oversample").settings()["sampler"] == "oversample"
    with pytest.warns(UserWarning, match=r"classes \[1\]"):
        create_remedy("cb").criterion([4, 0, 2])
    with pytest.raises(UnknownRemedyError, match="cb_focal") as err:
        create_remedy("smote")
    assert "smote" in str(err.value)
    with pytest.raises(TypeError, match="focal"):
        create_remedy("focal", beta=0.9)
    assert {"none", "resample", "class_uniform", "oversample", "cb", "focal", "cb_focal"} <= set(
        list_remedies()
    )
