"""Checkpoints: round trip, atomic write, and one-line errors for missing, truncated, foreign and
mismatched files."""

from __future__ import annotations

import pytest
import torch

from lossart.data import parse_data_spec
from lossart.errors import LossartError
from lossart.models import ModelSpec, create_model
from lossart.runs import versions
from lossart.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

SPEC = ModelSpec("smallcnn", 6, (3, 16, 16), {"width": 4})


def _ckpt() -> Checkpoint:
    model = create_model(SPEC)
    with torch.no_grad():
        model(torch.randn(4, 3, 16, 16))  # move BN running stats off their defaults
    return Checkpoint(
        model=SPEC,
        data=parse_data_spec("shapes"),
        state_dict=model.state_dict(),
        seed=7,
        metrics={"train_loss": 0.1, "train_accuracy": 0.9, "test_loss": 0.2, "test_accuracy": 0.8},
        versions=versions(),
        extra={"history": [{"epoch": 1, "train_loss": 0.5}]},
    )


def test_round_trip(tmp_path):
    ckpt = _ckpt()
    path = tmp_path / "a.pt"
    save_checkpoint(ckpt, path)
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temp files left behind
    back = load_checkpoint(path, expect_model=SPEC)
    assert back.model == SPEC and back.data == ckpt.data and back.seed == 7
    assert back.metrics == ckpt.metrics and back.extra == ckpt.extra
    assert back.versions["torch"] == str(torch.__version__) and "lossart" in back.versions
    assert back.state_dict.keys() == ckpt.state_dict.keys()
    assert all(torch.equal(back.state_dict[k], v) for k, v in ckpt.state_dict.items())
    x = torch.randn(2, 3, 16, 16)
    original = create_model(SPEC)
    original.load_state_dict(ckpt.state_dict)
    with torch.no_grad():
        assert torch.equal(back.build_model()(x), original.eval()(x))


def _one_line_error(path, **kw) -> str:
    with pytest.raises(LossartError) as err:
        load_checkpoint(path, **kw)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    assert "no such file" in _one_line_error(tmp_path / "absent.pt")


def test_truncated_file(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(_ckpt(), path)
    path.write_bytes(path.read_bytes()[:300])
    assert "truncated or foreign" in _one_line_error(path)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello\n")
    assert "truncated or foreign" in _one_line_error(text)
    plain = tmp_path / "plain.pt"
    torch.save(create_model(SPEC).state_dict(), plain)  # a bare state dict, not ours
    assert "not a lossart checkpoint" in _one_line_error(plain)
    pickled = tmp_path / "module.pt"
    torch.save(create_model(SPEC), pickled)  # a pickled module must not be executed
    assert "pickled Python objects" in _one_line_error(pickled)


def test_model_mismatch(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(_ckpt(), path)
    other = ModelSpec("smallcnn", 6, (3, 16, 16))  # same name, other kwargs
    msg = _one_line_error(path, expect_model=other)
    assert "holds model 'smallcnn'" in msg and "expected" in msg
    _one_line_error(path, expect_model=ModelSpec("resnet20", 6, (3, 16, 16), {"width": 4}))


def test_weights_that_do_not_fit_the_model(tmp_path):
    ckpt = _ckpt()
    ckpt.model = ModelSpec("smallcnn", 6, (3, 16, 16), {"width": 8})
    with pytest.raises(LossartError, match="do not fit"):
        ckpt.build_model()
