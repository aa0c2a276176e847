"""Bring your own weights: plain state_dicts, user and torchvision models, through the pipeline."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from lossart.cli import main
from lossart.data import load_dataset, normalize
from lossart.errors import LossartError
from lossart.models import ModelSpec, create_model
from lossart.training.checkpoint import load_checkpoint
from lossart.training.import_weights import (
    checkpoint_file,
    import_state_dict,
    imported_path,
    load_fitting,
    read_state_dict,
)

pytestmark = pytest.mark.usefixtures("one_thread")

USER_MODEL = "user_models:tiny_net"


def plain_training_loop(seed: int, steps: int = 40) -> torch.nn.Module:
    """What a user's script does: no lossart training code, only its data arrays."""
    import user_models

    ds = load_dataset("shapes")
    x, y = normalize(ds, ds.x_train), ds.y_train
    torch.manual_seed(seed)
    model = user_models.tiny_net(6, (3, 16, 16))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randperm(x.shape[0], generator=g)[:128]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def state_dicts(tmp_path_factory):
    """Two plain state_dict files: one as saved directly, one inside a training-script dict."""
    root = tmp_path_factory.mktemp("weights")
    a, b = plain_training_loop(0), plain_training_loop(1)
    torch.save(a.state_dict(), root / "a.pt")
    torch.save({"epoch": 3, "state_dict": b.state_dict()}, root / "b.pt")
    ds = load_dataset("shapes")
    with torch.no_grad():
        test_loss = F.cross_entropy(a(normalize(ds, ds.x_test)), ds.y_test).item()
    return root / "a.pt", root / "b.pt", test_loss


@pytest.mark.slow
def test_plain_state_dicts_go_through_import_curve_grid_terrain(state_dicts, tmp_path, capsys):
    import trimesh

    a, b, test_loss = state_dicts
    ckpt = tmp_path / "a_ckpt.pt"
    assert main(["import", str(a), "--model", USER_MODEL, "--data", "shapes",
                 "--out", str(ckpt)]) == 0  # fmt: skip
    ck = load_checkpoint(ckpt)
    assert ck.model == ModelSpec(USER_MODEL, 6, (3, 16, 16))
    assert ck.data.name == "shapes"
    assert ck.metrics["test_loss"] == pytest.approx(test_loss, rel=1e-5)
    assert ck.metrics["test_accuracy"] > 0.22  # trained: chance is 1/6

    run = tmp_path / "run"
    # w1 the imported checkpoint, w2 a plain state_dict imported on the way in
    assert main(["curve", str(ckpt), str(b), "--model", USER_MODEL, "--data", "shapes",
                 "--out", str(run), "--epochs", "1", "--frames", "3", "--batch-size", "500",
                 "--init-noise", "0.05"]) == 0  # fmt: skip
    assert f"imported {b} -> {imported_path(b)}" in capsys.readouterr().out
    w2 = load_checkpoint(run / "endpoints" / "w2.pt")
    assert w2.extra["import"]["source"] == str(b.resolve())
    assert json.loads((run / "run.json").read_text())["model"]["name"] == USER_MODEL

    assert main(["grid", str(run), "--resolution", "5", "--subset", "64"]) == 0
    assert main(["terrain", str(run), "--export-mesh", "2", "--mesh-format", "obj"]) == 0
    mesh = trimesh.load(run / "terrain" / "mesh" / "frame_00002.obj", process=False)
    assert mesh.vertices.shape == (25, 3) and mesh.faces.shape == (32, 3)

    # a rerun resumes: the import beside b.pt is reused, not redone
    stamp = imported_path(b).stat().st_mtime_ns
    assert main(["curve", str(ckpt), str(b), "--model", USER_MODEL, "--data", "shapes",
                 "--out", str(run), "--epochs", "1", "--frames", "3", "--batch-size", "500",
                 "--init-noise", "0.05"]) == 0  # fmt: skip
    assert imported_path(b).stat().st_mtime_ns == stamp


def test_plane_takes_three_plain_state_dicts(state_dicts, tmp_path):
    a, b, _ = state_dicts
    c = tmp_path / "c.pt"
    torch.save(plain_training_loop(2, steps=5).state_dict(), c)
    run = tmp_path / "plane"
    assert main(["plane", str(a), str(b), str(c), "--model", USER_MODEL, "--data", "shapes",
                 "--out", str(run), "--resolution", "3", "--subset", "32"]) == 0  # fmt: skip
    meta = json.loads((run / "run.json").read_text())
    assert meta["kind"] == "plane3" and meta["model"]["name"] == USER_MODEL
    assert meta["plane3"]["sources"][2] == str(imported_path(c).resolve())
    assert load_checkpoint(run / "endpoints" / "w3.pt").extra["import"]["source"] == str(c)


def test_import_is_idempotent_and_refuses_other_sources(state_dicts, tmp_path):
    a, b, _ = state_dicts
    out = tmp_path / "x.pt"
    first = import_state_dict(a, USER_MODEL, "shapes", out, progress=False)
    again = import_state_dict(a, USER_MODEL, "shapes", out, progress=False)
    assert again.metrics == first.metrics
    with pytest.raises(LossartError, match="not the import of"):
        import_state_dict(b, USER_MODEL, "shapes", out, progress=False)


def test_accepted_and_refused_file_forms(state_dicts, tmp_path):
    a, _, _ = state_dicts
    sd = torch.load(a, weights_only=True)
    for i, form in enumerate(
        [{"model": sd}, {"model_state_dict": sd, "optimizer": {}},
         {f"module.{k}": v for k, v in sd.items()}]  # DataParallel prefix
    ):  # fmt: skip
        torch.save(form, tmp_path / f"f{i}.pt")
        got = read_state_dict(tmp_path / f"f{i}.pt")
        assert got.keys() == sd.keys()
        assert all(torch.equal(got[k], sd[k]) for k in sd)

    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(LossartError, match="holds a list; expected a state_dict"):
        read_state_dict(tmp_path / "list.pt")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pt")
    with pytest.raises(LossartError, match="neither a state_dict"):
        read_state_dict(tmp_path / "meta.pt")
    torch.save(plain_training_loop(0, steps=0), tmp_path / "module.pt")
    with pytest.raises(LossartError, match="pickled Python objects"):
        read_state_dict(tmp_path / "module.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(LossartError, match="not a readable"):
        read_state_dict(tmp_path / "text.pt")


def test_lossart_checkpoints_pass_and_plain_files_need_the_model(state_dicts, tmp_path, capsys):
    a, b, _ = state_dicts
    ckpt = tmp_path / "a_ckpt.pt"
    import_state_dict(a, USER_MODEL, "shapes", ckpt, progress=False)
    assert checkpoint_file(ckpt) == ckpt
    with pytest.raises(LossartError, match="already a lossart checkpoint"):
        import_state_dict(ckpt, USER_MODEL, "shapes", tmp_path / "y.pt")
    with pytest.raises(LossartError, match="plain state_dict, not a lossart checkpoint; give --model"):
        checkpoint_file(b)
    code = main(["curve", str(ckpt), str(b), "--out", str(tmp_path / "r"), "--data", "shapes"])
    err = capsys.readouterr().err
    assert code == 2 and "give --model" in err and len(err.strip().splitlines()) == 1


def test_mismatched_keys_and_shapes_are_named_in_one_line(tmp_path, capsys):
    spec = ModelSpec("smallcnn", 6, (3, 16, 16), {"width": 4})
    sd = create_model(spec).state_dict()
    keys = list(sd)
    del sd[keys[0]]
    sd["extra.weight"] = torch.zeros(2)
    sd["fc.weight"] = torch.zeros(10, sd["fc.weight"].shape[1])
    with pytest.raises(LossartError) as info:
        load_fitting(create_model(spec), sd, "w.pt")
    msg = str(info.value)
    assert "\n" not in msg
    assert f"missing {keys[0]}" in msg
    assert "unexpected extra.weight" in msg
    assert f"shape fc.weight 10x{sd['fc.weight'].shape[1]} vs model 6x" in msg

    torch.save(sd, tmp_path / "w.pt")
    code = main(["import", str(tmp_path / "w.pt"), "--model", "smallcnn", "--model-arg",
                 "width=4", "--data", "shapes", "--out", str(tmp_path / "o.pt")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "unexpected extra.weight" in err
    assert not (tmp_path / "o.pt").exists()


def test_model_spec_must_fit_the_data(state_dicts, tmp_path):
    a, _, _ = state_dicts
    with pytest.raises(LossartError, match="10 classes.*data 'shapes' has 6 classes"):
        import_state_dict(a, USER_MODEL, "shapes", num_classes=10, progress=False)
    with pytest.raises(LossartError, match="input 3x32x32"):
        import_state_dict(a, USER_MODEL, "shapes", input_shape=(3, 32, 32), progress=False)


# ---------------------------------------------------------------- torchvision builders


def test_torchvision_resnet18_builds_runs_and_round_trips(tmp_path):
    spec = ModelSpec("torchvision:resnet18", 10, (3, 32, 32))
    model = create_model(spec).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    torch.save(model.state_dict(), tmp_path / "r18.pt")
    out = tmp_path / "r18_ckpt.pt"
    import_state_dict(
        tmp_path / "r18.pt", "torchvision:resnet18", "user_models:cifar_like", out, progress=False
    )
    ck = load_checkpoint(out)
    assert ck.model == spec  # the name rebuilds the architecture
    rebuilt = ck.build_model()
    for k, v in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v), k


def test_torchvision_errors_are_one_line():
    with pytest.raises(LossartError, match="did you mean torchvision:resnet18"):
        create_model(ModelSpec("torchvision:resnet19", 10, (3, 32, 32)))
    with pytest.raises(LossartError, match="expects 3-channel images, the data has 1"):
        create_model(ModelSpec("torchvision:resnet18", 10, (1, 28, 28)))
    with pytest.raises(LossartError, match="bad arguments"):
        create_model(ModelSpec("torchvision:resnet18", 10, (3, 32, 32), {"depth": 3}))
    with pytest.raises(LossartError, match="take images"):
        create_model(ModelSpec("torchvision:resnet18", 10, (20,)))
