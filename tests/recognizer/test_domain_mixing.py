"""Domain mixing (recognizer.mixing): domain-specific BatchNorm keeps real running statistics
only and a plain-model state dict; same-class mixup mixes only synthetic rows with real rows of
their class, deterministically; the remedy keys are validated and recorded; the utility search
gets the new dimensions; protocol runs pass the options to the trainer and train fold by fold."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from recognizer.mixing import (
    DomainMixing,
    MixingError,
    apply_mixup,
    domain_batchnorm,
    draw_mixup,
)
from recognizer.models import create_model
from recognizer.remedies import FoldData, Remedy, create_remedy
from recognizer.remedies.base import FoldContext
from recognizer.remedies.calibration import FoldCalibrationError, as_calibration
from recognizer.remedies.losses import FocalLoss
from recognizer.remedies.utility import search_space, trial_settings, trial_source
from recognizer.training.trainer import Trainer, TrainerConfig
from tests.recognizer.helpers import TensorClips, kfold_run


def _net() -> nn.Module:
    """A tiny clip network with BatchNorm3d and BatchNorm1d: ``(B, 2, 3, 4, 4)`` -> ``(B, 3)``."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1),
        nn.BatchNorm3d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
        nn.BatchNorm1d(5),
        nn.Linear(5, 3),
    )


def _buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "tracked" in k}


# --------------------------------------------------------------------------- domain BatchNorm


@pytest.mark.parametrize("build", [_net, lambda: create_model("ststnet", 3)])
def test_domain_bn_normalises_each_domain_with_its_own_batch(build) -> None:
    torch.manual_seed(1)
    routed = build()
    real_only, syn_only, plain = (copy.deepcopy(routed) for _ in range(3))
    shape = (2, 3, 4, 4) if isinstance(routed, nn.Sequential) else (3, 28, 28)
    x = torch.randn(10, *shape)
    synthetic = torch.tensor([False, True, False, True, True, False, False, True, False, False])
    x[synthetic] = x[synthetic] * 3 + 5  # another domain: other statistics
    for model in (routed, real_only, syn_only, plain):
        model.train()
    syn_before = _buffers(syn_only)
    with domain_batchnorm(routed) as router, router.route(synthetic):
        out = routed(x)
    expected_real = real_only(x[~synthetic])
    expected_syn = syn_only(x[synthetic])
    torch.testing.assert_close(out[~synthetic], expected_real)
    torch.testing.assert_close(out[synthetic], expected_syn)
    # running statistics: those of the real rows alone, not those of the mixed batch
    for key, value in _buffers(routed).items():
        torch.testing.assert_close(value, _buffers(real_only)[key])
    plain(x)
    means = [k for k in _buffers(plain) if k.endswith("running_mean")]
    assert any(not torch.allclose(_buffers(plain)[k], _buffers(routed)[k]) for k in means)
    assert all(torch.equal(syn_before[k], v) for k, v in syn_before.items())
    # the layers are restored and the state dict is the plain model's
    assert not any("forward" in vars(m) for m in routed.modules())
    assert list(routed.state_dict()) == list(plain.state_dict())


def test_domain_bn_is_plain_in_eval_and_outside_route() -> None:
    model = _net()
    twin = copy.deepcopy(model)
    x = torch.randn(6, 2, 3, 4, 4)
    mask = torch.tensor([True, False] * 3)
    with domain_batchnorm(model) as router:
        model.train()
        torch.testing.assert_close(model(x), twin.train()(x))  # no route: plain
        model.eval()
        with router.route(mask):
            torch.testing.assert_close(model(x), twin.eval()(x))


def _features(n_real: int, n_syn: int, dim: int = 4) -> tuple[torch.Tensor, list[int], list]:
    rng = np.random.default_rng(0)
    real = rng.normal(0, 1, (n_real, dim))
    syn = rng.normal(50, 3, (n_syn, dim))
    x = torch.from_numpy(np.concatenate([real, syn])).float()
    labels = [i % 2 for i in range(n_real + n_syn)]
    return x, labels, [False] * n_real + [True] * n_syn


def _bn_mlp(dim: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.BatchNorm1d(dim), nn.Linear(dim, 2))


def _config(**kw) -> TrainerConfig:
    base = dict(epochs=1, batch_size=64, lr=0.0, momentum=0.0, weight_decay=0.0, device="cpu",
                progress=False, scheduler="none")  # fmt: skip
    return TrainerConfig(**{**base, **kw})


def test_trainer_domain_bn_running_stats_come_from_real_batches_only() -> None:
    x, labels, domains = _features(12, 6)
    trained = _bn_mlp()
    Trainer(trained, FocalLoss(), _config()).fit(
        TensorClips(x, labels), domains=domains, mixing=DomainMixing(domain_bn=True)
    )
    real = x[:12]
    bn = trained[0]
    # one batch holds every item: running = (1 - momentum) * initial + momentum * real batch
    torch.testing.assert_close(bn.running_mean, 0.1 * real.mean(0))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * real.var(0, unbiased=True))
    # the same as training on the real items alone: the eval outputs ignore the synthetic ones
    real_only = _bn_mlp()
    Trainer(real_only, FocalLoss(), _config()).fit(TensorClips(real, labels[:12]))
    probe = torch.randn(7, 4)
    trained.eval(), real_only.eval()
    torch.testing.assert_close(trained(probe), real_only(probe))
    plain = _bn_mlp()
    Trainer(plain, FocalLoss(), _config()).fit(TensorClips(x, labels), domains=domains)
    assert not torch.allclose(plain[0].running_mean, bn.running_mean)
    # a plain model loads the weights and predicts the same
    fresh = _bn_mlp()
    fresh.load_state_dict(trained.state_dict(), strict=True)
    fresh.eval()
    torch.testing.assert_close(fresh(probe), trained(probe))


def test_trainer_domain_bn_learns_and_reloads() -> None:
    x, labels, domains = _features(16, 8)
    model = _bn_mlp()
    before = copy.deepcopy(model.state_dict())
    config = _config(epochs=3, batch_size=6, lr=0.1)
    Trainer(model, FocalLoss(), config).fit(
        TensorClips(x, labels), domains=domains, mixing=DomainMixing(domain_bn=True)
    )
    assert not torch.equal(before["1.weight"], model.state_dict()["1.weight"])
    # real running means stay near the real data (mean 0), far from the synthetic (mean 50)
    assert float(model[0].running_mean.abs().max()) < 2.0
    with pytest.raises(ValueError, match="domains has 3 values for 24"):
        Trainer(_bn_mlp(), FocalLoss(), config).fit(TensorClips(x, labels), domains=[True] * 3)


# --------------------------------------------------------------------------- mixup


def test_draw_mixup_pairs_synthetic_rows_with_real_rows_of_their_class() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 0, 1, 2, 0, 1])
    synthetic = torch.tensor([False, False, False, True, True, True, True, False, True, False])
    draw = draw_mixup(labels, synthetic, 1.0, 0.4, np.random.default_rng(3))
    partner, lam = draw.partner.numpy(), draw.lam.numpy()
    for i in range(len(labels)):
        if synthetic[i]:
            assert partner[i] >= 0, "p=1 mixes every synthetic row with a real row of its class"
            assert not synthetic[partner[i]] and labels[partner[i]] == labels[i]
            assert 0.0 <= lam[i] <= 1.0
        else:
            assert partner[i] == -1 and lam[i] == 0.0
    # a synthetic row without a real row of its class stays as it is
    alone = draw_mixup(torch.tensor([0, 1]), torch.tensor([False, True]), 1.0, 1.0,
                       np.random.default_rng(0))  # fmt: skip
    assert alone.partner.tolist() == [-1, -1]
    # p=0: nothing mixed; p=0.5: about half of the synthetic rows
    none = draw_mixup(labels, synthetic, 0.0, 1.0, np.random.default_rng(3))
    assert not none.mixed.any()
    many = torch.zeros(4000, dtype=torch.bool)
    many[::2] = True
    half = draw_mixup(torch.zeros(4000, dtype=torch.long), many, 0.5, 1.0,
                      np.random.default_rng(5))  # fmt: skip
    assert 0.45 < float(half.mixed[many].float().mean()) < 0.55
    lam_all = half.lam[half.mixed].numpy()
    assert 0.45 < lam_all.mean() < 0.55 and lam_all.min() >= 0 and lam_all.max() <= 1
    # the same generator state draws the same; another seed draws otherwise
    again = draw_mixup(labels, synthetic, 1.0, 0.4, np.random.default_rng(3))
    assert torch.equal(again.partner, draw.partner) and torch.equal(again.lam, draw.lam)
    other = draw_mixup(labels, synthetic, 1.0, 0.4, np.random.default_rng(4))
    assert not torch.equal(other.lam, draw.lam)


def test_apply_mixup_mixes_only_the_drawn_rows() -> None:
    x = torch.randn(5, 2, 3)
    labels = torch.tensor([0, 1, 0, 1, 0])
    synthetic = torch.tensor([False, False, True, True, True])
    draw = draw_mixup(labels, synthetic, 1.0, 1.0, np.random.default_rng(0))
    out = apply_mixup(x, draw)
    for i in range(5):
        j = int(draw.partner[i])
        if j < 0:
            assert torch.equal(out[i], x[i])
        else:
            lam = float(draw.lam[i])
            torch.testing.assert_close(out[i], lam * x[j] + (1 - lam) * x[i])
    assert torch.equal(x, x.clone()) and not torch.equal(out[2:], x[2:])


class Recorder(nn.Module):
    """A linear classifier that keeps every training batch it sees."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(dim, 2)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
        return self.linear(x)


def _mixup_fit(p: float, seed: int = 0, n: int = 16, epochs: int = 2) -> Recorder:
    x = torch.eye(n)  # item i is the one-hot e_i: a mixed row shows both its items
    labels = [i % 2 for i in range(n)]
    domains = [i >= n // 2 for i in range(n)]
    model = Recorder(n)
    config = _config(epochs=epochs, batch_size=8, lr=0.1, seed=seed)
    mixing = DomainMixing(mixup=p, mixup_alpha=0.5)
    Trainer(model, FocalLoss(), config).fit(TensorClips(x, labels), domains=domains, mixing=mixing)
    return model


def test_trainer_mixup_mixes_synthetic_items_with_real_items_of_their_class() -> None:
    n = 16
    labels = [i % 2 for i in range(n)]
    model = _mixup_fit(1.0, n=n)
    mixed_rows = 0
    for batch in model.seen:
        for row in batch:
            support = torch.nonzero(row).flatten().tolist()
            assert len(support) in (1, 2) and float(row.sum()) == pytest.approx(1.0)
            if len(support) == 1:
                assert float(row[support[0]]) == pytest.approx(1.0)
                continue
            mixed_rows += 1
            own = [i for i in support if i >= n // 2]
            partner = [i for i in support if i < n // 2]
            assert len(own) == 1 and len(partner) == 1, "a synthetic item with a real one"
            assert labels[own[0]] == labels[partner[0]]
    assert mixed_rows > 0
    # deterministic under the seed; p=0 is plain training; another seed mixes otherwise
    again = _mixup_fit(1.0, n=n)
    assert all(torch.equal(a, b) for a, b in zip(model.seen, again.seen, strict=True))
    assert torch.equal(model.linear.weight, again.linear.weight)
    other = _mixup_fit(1.0, seed=1, n=n)
    assert not all(torch.equal(a, b) for a, b in zip(model.seen, other.seen, strict=True))
    off = _mixup_fit(0.0, n=n)
    plain = Recorder(n)
    Trainer(plain, FocalLoss(), _config(epochs=2, batch_size=8, lr=0.1)).fit(
        TensorClips(torch.eye(n), labels)
    )
    assert all(torch.equal(a, b) for a, b in zip(off.seen, plain.seen, strict=True))
    assert torch.equal(off.linear.weight, plain.linear.weight)
    assert not torch.equal(model.linear.weight, plain.linear.weight)


# --------------------------------------------------------------------------- settings


def test_mixing_settings_are_validated_and_recorded() -> None:
    with pytest.raises(MixingError, match=r"remedy\.domain_bn must be true or false"):
        DomainMixing(domain_bn="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"remedy\.mixup must be a probability in \[0, 1\]"):
        create_remedy("synth_fill", mixup=1.5)
    with pytest.raises(ValueError, match=r"remedy\.mixup must be a number"):
        create_remedy("synth_fill", mixup="half")
    with pytest.raises(ValueError, match=r"remedy\.mixup_alpha must be > 0"):
        create_remedy("synth_fill", mixup=0.5, mixup_alpha=0)
    with pytest.raises(ValueError, match="synth_pretrain never trains on both"):
        create_remedy("synth_pretrain", domain_bn=True)
    with pytest.raises(ValueError, match="synth_only never trains on both"):
        create_remedy("synth_only", mixup=0.3)
    with pytest.raises(FoldCalibrationError, match=r"calibration\.search_mixup must be true"):
        as_calibration({"method": "utility", "search_mixup": "no"})
    with pytest.raises(ValueError, match="needs train_domains"):
        FoldData([1, 2], [0, 1], mixing=DomainMixing(domain_bn=True))
    on = create_remedy("synth_fill", domain_bn=True, mixup=0.25, mixup_alpha=0.4).settings()
    assert (on["domain_bn"], on["mixup"], on["mixup_alpha"]) == (True, 0.25, 0.4)
    off = create_remedy("synth_fill").settings()
    assert not {"domain_bn", "mixup", "mixup_alpha"} & set(off)
    utility = as_calibration({"method": "utility", "search_domain_bn": True}).settings()
    assert utility["search_domain_bn"] is True and "search_mixup" not in utility


def test_utility_search_space_holds_the_mixing_dimensions_when_asked(tmp_path: Path) -> None:
    from dataclasses import replace

    from mesynth.calibration.adversarial import quiet_profile
    from tests.recognizer.test_utility_calibration import _source

    plain = search_space([32], ("expert",), {})
    assert "domain_bn" not in plain and "mixup" not in plain
    space = search_space([32], ("expert",), {}, domain_bn=True, mixup=True)
    assert list(space["domain_bn"].choices) == [False, True]
    assert (space["mixup"].low, space["mixup"].high) == (0.0, 1.0)
    chosen = trial_settings(quiet_profile(), {"domain_bn": True, "mixup": 0.4}, ("expert",), 32)
    assert chosen.report()["domain_bn"] is True and chosen.report()["mixup"] == 0.4
    source = _source(tmp_path)
    placed = trial_source(source, chosen, tmp_path / "p.yaml")
    assert placed.mixing() == DomainMixing(domain_bn=True, mixup=0.4)
    # a trial that does not search them keeps the remedy's own
    kept = trial_source(
        replace(source, mixup=0.7),
        trial_settings(quiet_profile(), {}, ("expert",), 32),
        tmp_path / "p.yaml",
    )
    assert kept.mixing() == DomainMixing(mixup=0.7)


# --------------------------------------------------------------------------- protocol runs


@dataclass(frozen=True)
class MixesHalf(Remedy):
    """Real data, every other training sample declared synthetic, with domain BN and mixup."""

    def fold_data(self, context: FoldContext) -> FoldData:
        n = len(context.train)
        return FoldData(list(context.train), list(context.train_labels),
                        train_domains=[bool(i % 2) for i in range(n)],
                        mixing=DomainMixing(domain_bn=True, mixup=0.5))  # fmt: skip


def _mixed_run(tmp_path: Path, batched: object):
    return kfold_run(MixesHalf("mixes"), tmp_path, epochs=1, batched_folds=batched)


def test_protocol_runs_pass_the_mixing_to_the_trainer_fold_by_fold(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []
    fit = Trainer.fit

    def recording_fit(self, *args, **kwargs):
        calls.append(kwargs)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", recording_fit)
    with pytest.raises(ValueError, match=r"batched_folds=true but remedy\.domain_bn and remedy"):
        _mixed_run(tmp_path / "refused", True)
    result = _mixed_run(tmp_path / "auto", "auto")
    out = capsys.readouterr().out
    assert "batched folds: off from fold 0 on (remedy.domain_bn and remedy.mixup" in out
    assert len(result.predictions) == 24
    assert len(calls) == 2
    for kwargs in calls:
        assert kwargs["mixing"] == DomainMixing(domain_bn=True, mixup=0.5)
        assert kwargs["domains"] == [bool(i % 2) for i in range(len(kwargs["domains"]))]
