"""Model zoo: shapes, parameter counts vs published figures, no-skip really has no identity path,
functional_call and channels_last, user factories and their errors."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch.func import functional_call

from lossart.errors import LossartError
from lossart.models import ModelSpec, count_params, create_model, list_models, model_names
from lossart.models.resnet import BasicBlock

pytestmark = pytest.mark.usefixtures("one_thread")


REQUIRED = {
    "resnet20", "resnet20-noskip", "resnet32", "resnet32-noskip", "resnet56", "resnet56-noskip",
    "preresnet164", "vgg16", "vgg16-bn", "wrn28-10", "smallcnn", "mlp",
}  # fmt: skip

# published parameter counts at CIFAR-10 shapes (He et al. 2016; Zagoruyko & Komodakis 2016;
# the mode-connectivity papers' VGG-16) and the tolerance we hold them to
PUBLISHED = {
    "resnet20": 0.27e6, "resnet20-noskip": 0.27e6, "resnet32": 0.46e6, "resnet56": 0.85e6,
    "preresnet164": 1.7e6, "wrn28-10": 36.5e6, "vgg16": 15.0e6, "vgg16-bn": 15.0e6,
}  # fmt: skip


def test_registry_has_every_required_model():
    assert REQUIRED <= set(model_names())


def test_parameter_counts_match_published():
    counts = {r.name: r.params for r in list_models()}
    for name, published in PUBLISHED.items():
        assert abs(counts[name] - published) / published < 0.03, (name, counts[name], published)
    assert counts["resnet20"] == 269_722  # option A shortcuts add no parameters
    assert counts["resnet20-noskip"] == counts["resnet20"]


@pytest.mark.parametrize(
    "name, shape",
    [
        ("smallcnn", (3, 16, 16)),
        ("smallcnn", (1, 28, 28)),
        ("resnet20", (3, 8, 8)),
        ("resnet20-noskip", (3, 8, 8)),
        ("resnet32-noskip", (1, 8, 8)),
        ("resnet56", (3, 8, 8)),
        ("vgg16", (3, 32, 32)),
        ("vgg16-bn", (3, 16, 16)),
        ("mlp", (2,)),
        ("mlp", (3, 8, 8)),
    ],
)
def test_output_shape(name, shape):
    model = create_model(ModelSpec(name, 7, shape))
    out = model(torch.randn(3, *shape))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name, params", [("preresnet164", 1_703_258), ("wrn28-10", 36_479_194)])
def test_big_models_count_and_tiny_forward(name, params):
    model = create_model(ModelSpec(name, 10, (3, 8, 8))).eval()
    assert count_params(model) == params
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 8)).shape == (1, 10)


def test_mlp_regression_has_one_output():
    model = create_model(ModelSpec("mlp", 0, (1,)))
    assert model(torch.randn(5, 1)).shape == (5, 1)


def _blocks(model):
    return [m for m in model.modules() if isinstance(m, BasicBlock)]


@pytest.mark.parametrize("name", ["resnet20-noskip", "resnet32-noskip", "resnet56-noskip"])
def test_noskip_blocks_output_only_their_branch(name):
    """Structural: every block's output is exactly ReLU(branch(input)), nothing added."""
    model = create_model(ModelSpec(name, 10, (3, 8, 8))).eval()
    blocks = _blocks(model)
    assert blocks and not any(b.skip for b in blocks)
    seen = []

    def hook(block, inputs, output):
        seen.append(torch.equal(output, torch.relu(block.branch(inputs[0]))))

    for b in blocks:
        b.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 8))
    assert len(seen) == len(blocks) and all(seen)


def test_skip_blocks_do_add_the_identity():
    """The same hook fails for the ordinary ResNet, so the check above can fail."""
    model = create_model(ModelSpec("resnet20", 10, (3, 8, 8))).eval()
    seen = []
    for b in _blocks(model):
        b.register_forward_hook(
            lambda blk, i, o: seen.append(torch.equal(o, torch.relu(blk.branch(i[0]))))
        )
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 8))
    assert not any(seen)


@pytest.mark.parametrize(
    "name, input_reaches_output", [("resnet20-noskip", False), ("resnet20", True)]
)
def test_silencing_first_block_cuts_the_input_only_without_skips(name, input_reaches_output):
    """Behavioural: zero the first block's last BN; only an identity path can still carry x."""
    model = create_model(ModelSpec(name, 10, (3, 8, 8))).eval()
    first = _blocks(model)[0]
    with torch.no_grad():
        first.bn2.weight.zero_()
        first.bn2.bias.zero_()
        a = model(torch.randn(2, 3, 8, 8))
        b = model(torch.randn(2, 3, 8, 8))
    assert torch.allclose(a, b) != input_reaches_output


@pytest.mark.parametrize("name", ["smallcnn", "resnet20-noskip", "vgg16-bn"])
def test_functional_call_and_channels_last(name):
    model = create_model(ModelSpec(name, 5, (3, 16, 16))).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
        params = {k: v * 1.0 for k, v in model.named_parameters()}
        assert torch.allclose(functional_call(model, params, (x,)), ref, atol=1e-6)
        zeroed = {k: torch.zeros_like(v) for k, v in params.items()}
        assert not torch.allclose(functional_call(model, zeroed, (x,)), ref)
        cl = model.to(memory_format=torch.channels_last)
        out = cl(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out, ref, atol=1e-4)


def test_model_kwargs_reach_the_constructor():
    narrow = create_model(ModelSpec("smallcnn", 10, (3, 16, 16), {"width": 8}))
    assert count_params(narrow) < count_params(create_model(ModelSpec("smallcnn", 10, (3, 16, 16))))
    with pytest.raises(LossartError, match="bad arguments"):
        create_model(ModelSpec("smallcnn", 10, (3, 16, 16), {"nonsense": 1}))


def test_unknown_model_lists_known_ones():
    with pytest.raises(LossartError, match="resnet20-noskip") as err:
        create_model(ModelSpec("resnet21", 10, (3, 32, 32)))
    assert "\n" not in str(err.value)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_user_models.py").write_text(
        textwrap.dedent(
            """
            import torch.nn as nn

            def tiny(num_classes, input_shape, hidden=4):
                return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], hidden), nn.ReLU(),
                                     nn.Linear(hidden, num_classes))

            def not_a_model(num_classes, input_shape):
                return 42

            NOT_CALLABLE = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_user_models"
    sys.modules.pop("my_user_models", None)


def test_user_factory(user_module):
    model = create_model(ModelSpec(f"{user_module}:tiny", 3, (2,), {"hidden": 6}))
    assert model(torch.randn(4, 2)).shape == (4, 3)
    assert count_params(model) == 2 * 6 + 6 + 6 * 3 + 3


@pytest.mark.parametrize(
    "name, message",
    [
        ("no_such_module_xyz:fn", "cannot import module"),
        ("my_user_models:missing", "has no attribute"),
        ("my_user_models:NOT_CALLABLE", "not callable"),
        ("my_user_models:not_a_model", "expected a torch.nn.Module"),
        ("my_user_models:", "package.module:factory"),
    ],
)
def test_user_factory_errors_are_one_line(user_module, name, message):
    with pytest.raises(LossartError, match=message) as err:
        create_model(ModelSpec(name, 3, (2,)))
    assert "\n" not in str(err.value)


def test_spec_round_trip():
    spec = ModelSpec("resnet20-noskip", 10, [3, 32, 32], {"width": 16})
    again = ModelSpec.from_dict(spec.to_dict())
    assert again == spec and again.input_shape == (3, 32, 32)
    assert hash(again) == hash(spec) and len({spec, again}) == 1


def test_registry_imports_no_model_module():
    """The zoo imports the registry, never the other way round (`lossart.models` loads the zoo)."""
    import ast
    from pathlib import Path

    import lossart.models.registry as registry

    tree = ast.parse(Path(registry.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    zoo = {f"lossart.models.{m}" for m in ("preresnet", "resnet", "small", "vgg", "wrn")}
    assert not imported & (zoo | {"lossart.models"})
    assert "resnet20-noskip" in model_names()  # populated by the package, not by the registry
