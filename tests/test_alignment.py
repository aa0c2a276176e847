"""Permutation alignment: groups read from the network, exact round trips, lower barriers."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from lossart.alignment import (
    AlignConfig,
    MatchConfig,
    UnsupportedOp,
    align_checkpoints,
    derive_spec,
    permute_state_dict,
    random_perms,
    weight_matching,
)
from lossart.models import ModelSpec, create_model
from lossart.models.preresnet import PreResNet

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_VGG = (8, 8, "M", 16, 16, "M", 16, 16, 16, "M", 16, 16, 16, "M", 16, 16, 16, "M")
#: Every zoo model, small enough to trace and match in a few seconds (same code, fewer channels).
ZOO = [
    ("resnet20", {"width": 4}, (3, 8, 8)),
    ("resnet20-noskip", {"width": 4}, (3, 8, 8)),
    ("resnet32", {"width": 4}, (3, 8, 8)),
    ("resnet32-noskip", {"width": 4}, (3, 8, 8)),
    ("resnet56", {"width": 4}, (3, 8, 8)),
    ("resnet56-noskip", {"width": 4}, (3, 8, 8)),
    ("preresnet164", {"depth": 29}, (3, 4, 4)),  # its bottlenecks, 3 per stage instead of 18
    ("vgg16", {"cfg": SMALL_VGG}, (3, 8, 8)),
    ("vgg16-bn", {"cfg": SMALL_VGG}, (3, 8, 8)),
    ("wrn28-10", {"widen": 1}, (3, 8, 8)),
    ("smallcnn", {"width": 4}, (3, 8, 8)),
    ("mlp", {"width": 16}, (3, 4, 4)),
]


def _model(name, kwargs, shape, seed):
    torch.manual_seed(seed)
    if name == "preresnet164":  # the registry fixes depth 164: build its class at a small depth
        model = PreResNet(num_classes=10, input_shape=shape, **kwargs).double().eval()
    else:
        model = create_model(ModelSpec(name, 10, shape, kwargs)).double().eval()
    with torch.no_grad():  # BN statistics off their defaults, so that they must follow too
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
    return model


def _params(model):
    names = [n for n, _ in model.named_parameters()]
    sd = model.state_dict()
    return {n: sd[n] for n in names}


def _same_function(model, state_dict, shape):
    x = torch.randn(4, *shape, dtype=torch.float64)
    other = copy.deepcopy(model)
    other.load_state_dict(state_dict)
    with torch.no_grad():
        a, b = model(x), other(x)
    return torch.allclose(a, b, rtol=1e-9, atol=1e-9 * float(a.abs().max()))


# ---------------------------------------------------------------------------- written by hand


def test_hand_written_permutation_of_an_mlp():
    """The groups of a 2-hidden-layer MLP, and its permutation, written out here by hand."""
    model = _model("mlp", {"width": 3}, (4,), seed=0)
    spec = derive_spec(model, (4,))
    assert [(g.name, g.size) for g in spec.groups] == [("net.1.weight:0", 3), ("net.3.weight:0", 3)]
    p0, p1 = np.array([2, 0, 1]), np.array([1, 2, 0])
    sd = model.state_dict()
    by_hand = {
        "net.1.weight": sd["net.1.weight"][p0],
        "net.1.bias": sd["net.1.bias"][p0],
        "net.3.weight": sd["net.3.weight"][p1][:, p0],
        "net.3.bias": sd["net.3.bias"][p1],
        "net.5.weight": sd["net.5.weight"][:, p1],
        "net.5.bias": sd["net.5.bias"],
    }
    derived = permute_state_dict(sd, spec, [p0, p1])
    assert all(torch.equal(derived[k], by_hand[k]) for k in sd)
    assert _same_function(model, by_hand, (4,))
    # aligning the hand-permuted copy back recovers the original weights exactly
    found = weight_matching(spec, sd, by_hand).perms
    back = permute_state_dict(by_hand, spec, found)
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    assert [list(p) for p in found] == [list(np.argsort(p0)), list(np.argsort(p1))]


def test_zoo_resnet_stream_carries_the_previous_stage_in_its_padded_middle():
    """Option A pads pad//2 zero channels each side: stage 2's stream (8 channels at width 4)
    holds stage 1's stream in channels 2..5 and its own new units in 0, 1, 6, 7."""
    model = _model("resnet20", {"width": 4}, (3, 8, 8), seed=0)
    spec = derive_spec(model, (3, 8, 8))
    stage2_out = spec.axes["blocks.3.bn2.running_mean"][0]  # the first stage-2 block's output
    stage1 = next(g for g, s in spec.axes["bn1.weight"][0].items())  # the stem's stream
    assert stage2_out[stage1].ravel().tolist() == [2, 3, 4, 5]
    (new,) = [g for g in stage2_out if g != stage1]
    assert sorted(stage2_out[new].ravel().tolist()) == [0, 1, 6, 7]
    # every block of a stage shares the stream: block 4's output BN is in the same two groups
    assert set(spec.axes["blocks.4.bn2.weight"][0]) == {stage1, new}


# ---------------------------------------------------------------------------- every zoo model


@pytest.mark.parametrize("name,kwargs,shape", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_round_trip_and_two_seeds(name, kwargs, shape):
    a = _model(name, kwargs, shape, seed=0)
    spec = derive_spec(a, shape, name)
    assert spec.groups
    sd = a.state_dict()
    # a random permutation keeps the function, and matching undoes it exactly
    perms = random_perms(spec, seed=3)
    permuted = permute_state_dict(sd, spec, perms)
    assert _same_function(a, permuted, shape)
    found = weight_matching(spec, _params(a), {n: permuted[n] for n in _params(a)}).perms
    back = permute_state_dict(permuted, spec, found)
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    # two seeds: alignment lowers the L2 distance and keeps B's function
    b = _model(name, kwargs, shape, seed=1)
    pa, pb = _params(a), _params(b)
    found = weight_matching(spec, pa, pb, MatchConfig(seed=0)).perms
    aligned = permute_state_dict(b.state_dict(), spec, found)

    def dist(x):
        return sum(float(((pa[n] - x[n]) ** 2).sum()) for n in pa)

    assert dist(aligned) < dist(pb)
    assert _same_function(b, aligned, shape)


def test_torchvision_resnet18_is_traced_with_its_residual_streams():
    torch.manual_seed(0)
    model = create_model(ModelSpec("torchvision:resnet18", 10, (3, 8, 8))).double().eval()
    spec = derive_spec(model, (3, 8, 8))
    # one stream per stage (started by the stem or a downsampling block's conv2 + shortcut),
    # one group of hidden units per block
    names = [g.name for g in spec.groups]
    streams = ["conv1.weight:0"] + [f"layer{i}.0.conv2.weight:0" for i in (2, 3, 4)]
    hidden = [f"layer{i}.{j}.conv1.weight:0" for i in (1, 2, 3, 4) for j in (0, 1)]
    assert sorted(names) == sorted(streams + hidden)
    stream = spec.groups[names.index("layer3.0.conv2.weight:0")]
    assert stream.size == 256
    assert set(spec.axes["layer3.0.downsample.1.running_var"][0]) == {names.index(stream.name)}
    perms = random_perms(spec, seed=1)
    assert _same_function(model, permute_state_dict(model.state_dict(), spec, perms), (3, 8, 8))


class _Mixer(nn.Module):
    def forward(self, x):
        return x.flip(1)


class _UserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mixer = _Mixer()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = self.mixer(torch.relu(self.conv(x)))
        return self.fc(x.mean((2, 3)))


class _DepthwiseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.dw(self.stem(x)).mean((2, 3)))


@pytest.mark.parametrize("net,where", [(_UserNet, "'mixer'"), (_DepthwiseNet, "'dw'")])
def test_an_op_it_cannot_permute_is_one_line_naming_the_module(net, where):
    with pytest.raises(UnsupportedOp) as info:
        derive_spec(net(), (3, 8, 8), "mynet")
    message = str(info.value)
    assert "\n" not in message and where in message and message.startswith("mynet:")


def test_a_user_module_of_usual_layers_is_traced():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 6, 3, padding=1)
            self.b = nn.Conv2d(6, 6, 3, padding=1)
            self.fc = nn.Linear(6 * 4 * 4, 2)

        def forward(self, x):
            h = torch.relu(self.a(x))
            h = h + torch.relu(self.b(h))  # a residual stream of a user's own making
            h = nn.functional.max_pool2d(h, 2)
            return self.fc(h.view(h.size(0), -1))  # flatten: each channel is 16 features

    model = Net().double().eval()
    spec = derive_spec(model, (3, 8, 8))
    assert [(g.name, g.size) for g in spec.groups] == [("a.weight:0", 6)]
    assert spec.axes["fc.weight"][1][0].shape == (6, 16)
    assert _same_function(model, permute_state_dict(model.state_dict(), spec,
                                                    random_perms(spec, 2)), (3, 8, 8))  # fmt: skip


# ---------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory):
    """Two small nets trained independently on the built-in shapes data (fixed seeds)."""
    from lossart.training.endpoints import TrainConfig, train_endpoint

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("align")
    paths = []
    for seed in (5, 6):
        out = root / f"w{seed}.pt"
        train_endpoint(TrainConfig(data="shapes", model="smallcnn", model_kwargs={"width": 8},
                                   epochs=3, seed=seed, out=out, progress=False,
                                   train_eval_size=500))  # fmt: skip
        paths.append(str(out))
    return paths


def test_aligned_barrier_is_lower_and_the_output_is_an_ordinary_checkpoint(endpoints, tmp_path):
    from lossart.analyses.line import line_points
    from lossart.training.checkpoint import load_checkpoint

    a, b = endpoints
    out = tmp_path / "b-aligned.pt"
    res = align_checkpoints(AlignConfig(a, (b,), str(out)))
    (m,) = res.models
    assert m.l2_after < m.l2_before
    before = line_points(a, b, points=9, subset=300).line
    after = line_points(a, str(out), points=9, subset=300).line
    assert after.barrier < before.barrier
    ckpt, src = load_checkpoint(out), load_checkpoint(b)
    assert ckpt.metrics == src.metrics and ckpt.model == src.model
    record = ckpt.extra["alignment"]
    assert record["reference"] == a and record["source"] == b
    saved = json.loads((tmp_path / "b-aligned.perm.json").read_text())
    assert [g["perm"] for g in saved["groups"]] == [g["perm"] for g in record["groups"]]
    # rerunning leaves the finished output alone; other settings are refused in one line
    again = align_checkpoints(AlignConfig(a, (b,), str(out)))
    assert again.models[0].reused
    with pytest.raises(Exception, match="exists and is not"):
        align_checkpoints(AlignConfig(a, (b,), str(out), method="activations", subset=64))


def test_activation_matching_and_several_models_in_one_call(endpoints, tmp_path):
    a, b = endpoints
    res = align_checkpoints(
        AlignConfig(b, (a, b), str(tmp_path / "aligned"), method="activations", subset=128)
    )
    assert [m.out for m in res.models] == [str(tmp_path / "aligned" / "w5.pt"),
                                           str(tmp_path / "aligned" / "w6.pt")]  # fmt: skip
    assert res.models[0].l2_after < res.models[0].l2_before
    assert res.models[1].l2_after == pytest.approx(0.0, abs=1e-6)  # b against itself


def test_interrupted_matching_resumes_to_the_same_result(endpoints, tmp_path, monkeypatch):
    import lossart.alignment.checkpoints as ck

    a, b = endpoints
    whole = align_checkpoints(AlignConfig(a, (b,), str(tmp_path / "whole.pt")))

    class Interrupting:
        def update(self, n):
            raise KeyboardInterrupt

        def set_postfix(self, **kw):
            pass

        def close(self):
            pass

    monkeypatch.setattr(ck, "progress", lambda **kw: Interrupting())
    with pytest.raises(KeyboardInterrupt):
        align_checkpoints(AlignConfig(a, (b,), str(tmp_path / "part.pt")))
    assert (tmp_path / "part.perm.partial.json").exists()
    monkeypatch.undo()
    resumed = align_checkpoints(AlignConfig(a, (b,), str(tmp_path / "part.pt")))
    assert not (tmp_path / "part.perm.partial.json").exists()
    assert resumed.models[0].l2_after == pytest.approx(whole.models[0].l2_after)


def test_cli_prints_distances_and_errors_in_one_line(endpoints, tmp_path, capsys):
    from lossart.cli import main

    a, b = endpoints
    assert main(["align", a, b, "--out", str(tmp_path / "b2.pt")]) == 0
    out = capsys.readouterr().out
    assert "L2 distance to" in out and "->" in out
    assert main(["align", a, str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.pt" in err
    # the two lines on one plot: A->B, then A->B-aligned beside it
    common = ["--points", "3", "--subset", "64"]
    assert main(["line", a, b, "--out", str(tmp_path / "ab"), *common]) == 0
    assert main(["line", a, str(tmp_path / "b2.pt"), "--out", str(tmp_path / "aligned"), *common,
                 "--beside", str(tmp_path / "ab")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert (tmp_path / "aligned" / "line-compare.png").stat().st_size > 0
    assert "w5 → w6: barrier" in out and "w5 → b2: barrier" in out
    assert main(["line", a, b, "--out", str(tmp_path / "c"), "--beside", str(tmp_path)]) == 2
    assert "no line.json" in capsys.readouterr().err
