"""The residual backbone: spec schema, exact equivariance, relaxation, mixed layers, export, searches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SMALL_NET_ARGS, needs_data, synthetic_task
from equinas.cli import main
from equinas.execution import LocalExecutor
from equinas.export import export_plain, export_torchscript
from equinas.groups import act_on_features, intersection, parse_group, subgroups
from equinas.metrics import equivariance_error, equivariance_summary, relative_error
from equinas.metrics.cost import macs_per_image
from equinas.models import ArchSpec, EquivariantCNN, ResidualCNN, SpecError, backbone, build_network
from equinas.morphisms import relax_network
from equinas.nn import GroupConv, SpatialPool
from equinas.search import BackboneSettings, SearchContext, make_method, run_search
from equinas.search.run_directory import RunDirectory
from equinas.testing import assert_equivariant
from equinas.train import TrainConfig

D4 = parse_group("D4")
# stem 2, an identity block of 2, a pool, a projection block of 3: layers 0 | 1 2 | 3 4
SMALL = dict(widths=(2, 2, 3), pools_after=(1,), kernel_size=3, hidden=6, backbone="resnet")
V1_FIXTURE = Path(__file__).parent / "data" / "archspec_v1.json"


def network(group: str | list[str] = "D4", dtype=torch.float64, **changes) -> ResidualCNN:
    """A small resnet with perturbed affines and moved running statistics (eval mode)."""
    model = build_network(backbone(group, **{**SMALL, **changes})).to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "alpha" in name:
                p.add_(0.3 * torch.randn_like(p))
        model.train()
        model(torch.randn(8, 1, 16, 16, dtype=dtype))
    return model.eval()


# -- spec ------------------------------------------------------------------------------------------
def test_resnet_spec_layout_and_json_round_trip() -> None:
    spec = backbone("D4", **SMALL)
    assert spec.backbone == "resnet" and len(spec.layers) == 5
    assert spec.residual_blocks() == [(1, 2), (3, 4)]
    assert [layer.pool for layer in spec.layers] == [False, False, True, False, False]
    data = json.loads(spec.to_json())
    assert data["schema"] == 2 and data["backbone"] == "resnet"
    assert ArchSpec.from_json(spec.to_json()) == spec
    model = build_network(spec)
    assert [b.skip is None for b in model.residual_blocks] == [True, False]  # identity, then projection
    assert model.residual_blocks[1].skip.conv.kernel_size == 1


def test_old_unversioned_specs_keep_loading() -> None:
    """The fixture was written by ``to_json`` before the schema field existed."""
    raw = json.loads(V1_FIXTURE.read_text())
    assert "schema" not in raw and "backbone" not in raw
    spec = ArchSpec.load(V1_FIXTURE)
    assert spec.backbone == "plain"
    assert spec.groups_per_layer() == ["D4", "C4", "D1", "C2"]
    assert spec.layers[3].kind == "rpp" and spec.layers[3].options == {"free_init": 0.01}
    assert isinstance(build_network(spec), EquivariantCNN)
    upgraded = spec.to_dict()
    assert upgraded["schema"] == 2 and ArchSpec.from_dict(upgraded) == spec
    assert ArchSpec.from_dict({**raw, "schema": 1}) == spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": 3}, "schema: unsupported version 3"),
        ({"schema": "2"}, "schema: unsupported version"),
        ({"schema": 1, "backbone": "resnet"}, "backbone: needs schema 2"),
        ({"schema": 2, "backbone": "densenet"}, "backbone: expected one of"),
    ],
)
def test_bad_schema_and_backbone_fields_are_named(change: dict, message: str) -> None:
    raw = json.loads(V1_FIXTURE.read_text())
    with pytest.raises(SpecError, match=message):
        ArchSpec.from_dict({**raw, **change})


def test_resnet_layouts_that_cannot_be_wired_are_refused() -> None:
    spec = backbone("D4", **SMALL)
    with pytest.raises(SpecError, match="an odd number >= 3"):
        ArchSpec(layers=spec.layers[:4], backbone="resnet")
    with pytest.raises(SpecError, match=r"layers\[3\].pool: the first layer of a residual block"):
        spec.with_layer(3, pool=True)
    with pytest.raises(SpecError, match="widths: a resnet needs a stem"):
        backbone("D4", **{**SMALL, "widths": (4,), "pools_after": ()})
    with pytest.raises(SpecError, match="7 groups for 5 layers"):
        backbone(["D4"] * 7, **SMALL)
    with pytest.raises(ValueError, match="ResidualCNN builds resnet specs"):
        ResidualCNN(backbone("D4", widths=(2, 2)))


# -- equivariance ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "dtype", "tol"),
    [(16, torch.float64, 1e-12), (28, torch.float64, 1e-12), (128, torch.float32, 1e-5)],
)
def test_whole_resnet_is_d4_equivariant_in_every_block(size: int, dtype: torch.dtype, tol: float) -> None:
    """Every element of D4, every block output and the logits; 28 -> 14 -> 7 pools exactly."""
    model = network(dtype=dtype, pools_after=(0, 1)) if size == 28 else network(dtype=dtype)
    x = torch.randn(1 if size > 32 else 2, 1, size, size, dtype=dtype)
    result = equivariance_error(model, D4, x)
    assert len(result["per_element"]) == 7 and len(result["layers"]) == 3
    assert max(result["layers"]) < tol and result["output"] < tol
    assert equivariance_summary(model, x)["output"] < tol


def test_pooling_keeps_even_sizes_exact_where_a_stride_would_not() -> None:
    """The downsampling choice: a 2x2 pool of a 16x16 map commutes with every element of D4, a
    stride-2 convolution (the even pixels of an even grid) does not."""
    conv = GroupConv(2, 2, 3, D4).double()
    x = torch.randn(1, 2, 8, 16, 16, dtype=torch.float64)
    pool = SpatialPool(2)

    def strided(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t.flatten(1, 2), conv.filter(), stride=2, padding=1).view(1, 2, 8, 8, 8)

    for g in D4.elements[1:]:
        gx = act_on_features(x, g, D4)
        assert relative_error(pool(conv(gx)), act_on_features(pool(conv(x)), g, D4)) < 1e-12
    rotated = act_on_features(x, (0, 1), D4)
    assert relative_error(strided(rotated), act_on_features(strided(x), (0, 1), D4)) > 0.1


LATTICE = subgroups(D4)


@settings(max_examples=8)
@given(
    st.lists(st.integers(0, len(LATTICE) - 1), min_size=5, max_size=5),
    st.integers(0, 4),
    st.integers(0, len(LATTICE) - 1),
)
def test_any_per_layer_groups_give_equivariance_to_their_intersection(
    picks: list[int], layer: int, target: int
) -> None:
    """Random groups per layer: the network is exactly equivariant to their intersection, and
    relaxing a random layer to a random subgroup of its group keeps the function."""
    groups = [LATTICE[i] for i in picks]
    model = network([g.name for g in groups])
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    common = intersection(groups)
    result = equivariance_error(model, common, x)
    assert max(result["layers"], default=0.0) < 1e-12 and result["output"] < 1e-12
    outside = [g for g in D4.elements if g not in common.elements]
    if outside:  # an element no layer's intersection keeps is not a symmetry
        assert max(equivariance_error(model, D4, x, elements=outside[:1])["layers"]) > 1e-6
    subgroup = LATTICE[target]
    if subgroup.is_subgroup_of(groups[layer]):
        child = relax_network(model, layer, subgroup)
        with torch.no_grad():
            assert relative_error(child(x), model(x)) < 1e-12


# -- relaxation morphism --------------------------------------------------------------------------
def unit_parameters(model: ResidualCNN, index: int) -> int:
    return sum(
        p.numel() for name in model.layer_modules(index) for p in model.get_submodule(name).parameters()
    )


@pytest.mark.parametrize("layer", [0, 1, 2, 3, 4])
def test_relaxing_any_layer_of_a_block_keeps_the_function(layer: int) -> None:
    """Every subgroup of D4, train and eval mode; layer 4 carries the projection skip."""
    model = network()
    x = torch.randn(4, 1, 16, 16, dtype=torch.float64)
    for k in subgroups(D4):
        child = relax_network(model, layer, k)
        assert child.spec.groups_per_layer()[layer] == k.name
        assert model.spec.groups_per_layer()[layer] == "D4"
        assert all(child.get_submodule(n).group == k for n in child.layer_modules(layer))
        for mode in (False, True):
            model.train(mode)
            child.train(mode)
            with torch.no_grad():
                assert relative_error(child(x), model(x)) < 1e-12, (k.name, mode)
        index = D4.order // k.order
        grown = child.num_parameters() - model.num_parameters()
        assert grown == unit_parameters(model, layer) * (index - 1)
    assert len(model.layer_modules(4)) == 4 and len(model.layer_modules(2)) == 2


def test_relaxed_resnet_trains_and_stays_equivariant_to_the_kept_group() -> None:
    child = relax_network(network(dtype=torch.float32), 4, "C4").train()
    x, y = torch.randn(16, 1, 16, 16), torch.randint(0, 10, (16,))
    opt = torch.optim.SGD(child.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(child(x), y).backward()
        opt.step()
    assert equivariance_error(child, parse_group("C4", ambient=D4), x)["output"] < 1e-5
    assert equivariance_error(child, D4, x, elements=[(1, 0)])["layers"][2] > 1e-3


def expected_parameters(widths: tuple[int, ...], k: int, hidden: int, order: int = 8) -> int:
    """Parameters of a D4 resnet with every layer D4: lifting ``C_out*C_in*k^2``, group convs
    ``C_out*C_in*|G|*k^2``, 1x1 projections ``C_out*C_in*|G|``, norms ``2C``, head MLP."""
    stem = widths[0]
    total = stem * k * k + 2 * stem
    prev = stem
    for width in widths[1:]:
        total += width * prev * order * k * k + width * width * order * k * k + 4 * width
        if width != prev:
            total += width * prev * order + 2 * width
        prev = width
    return total + (prev * hidden + hidden) + 2 * hidden + (hidden * 10 + 10)


def test_parameter_counts() -> None:
    model = build_network(backbone("D4", **SMALL))
    assert model.num_parameters() == expected_parameters((2, 2, 3), 3, 6)
    big = build_network(backbone("D4", **{**SMALL, "widths": (4, 4, 8, 8), "pools_after": (1, 2)}))
    assert big.num_parameters() == expected_parameters((4, 4, 8, 8), 3, 6)


# -- mixed layers and projection -----------------------------------------------------------------
def test_mixed_resnet_projects_to_an_exactly_equivariant_network() -> None:
    model = network("C1", kind="mixed")
    assert len(model.mixed_layers()) == 5 and len(model.architecture_parameters()) == 5
    assert model.residual_blocks[1].skip.conv.group == D4  # the mixed layer's norm group
    chosen = ["D4", "C4", "D2", "C2", "C4"]  # intersection C2
    with torch.no_grad():
        for (_, conv), name in zip(model.mixed_layers(), chosen, strict=True):
            conv.alpha.zero_()
            conv.alpha[[str(g) for g in conv.groups].index(name)] = 40.0  # a nearly one-hot choice
    discrete = model.projected()
    assert discrete.spec.groups_per_layer() == chosen and not discrete.mixed_layers()
    assert all(discrete.get_submodule(n).group.name == "C4" for n in discrete.layer_modules(4))
    x = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        assert relative_error(discrete(x), model(x)) < 1e-9
    assert equivariance_error(discrete, parse_group("C2", ambient=D4), x)["output"] < 1e-12
    assert equivariance_error(discrete, D4, x, elements=[(0, 1)])["output"] > 1e-6


# -- export ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "group"), [("regular", "D4"), ("regular", "C2"), ("mixed", "C1"), ("rpp", "C4")]
)
def test_resnet_export_matches_the_eval_model(kind: str, group: str) -> None:
    model = network(group, dtype=torch.float32, kind=kind)
    plain = export_plain(model)
    x = torch.randn(5, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), atol=1e-5, rtol=0)
    assert not plain.training
    modules = [m for m in plain.modules() if m is not plain]
    assert all(type(m).__module__.startswith("torch.nn.") for m in modules)


LOAD_WITHOUT_EQUINAS = """
import sys
sys.modules["equinas"] = None
import torch
model = torch.load(sys.argv[1], weights_only=False)
with torch.no_grad():
    torch.save(model(torch.load(sys.argv[2])), sys.argv[3])
"""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_resnet_export_saves_traces_and_loads_without_equinas(tmp_path) -> None:
    model = network(dtype=torch.float32)
    x = torch.randn(3, 1, 16, 16)
    torch.save(export_plain(model), tmp_path / "model.pt")
    torch.save(x, tmp_path / "x.pt")
    files = [str(tmp_path / n) for n in ("model.pt", "x.pt", "y.pt")]
    run = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_EQUINAS, *files], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    export_torchscript(model, tmp_path / "model.ts", torch.randn(2, 1, 16, 16))
    with torch.no_grad():
        torch.testing.assert_close(torch.load(files[2]), model(x), atol=1e-5, rtol=0)
        torch.testing.assert_close(torch.jit.load(str(tmp_path / "model.ts"))(x), model(x), atol=1e-5, rtol=0)


# -- searches --------------------------------------------------------------------------------------
RESNET = BackboneSettings(widths=(1, 1, 2), pools_after=(1,), kernel_size=3, hidden=None, backbone="resnet")


def context(tmp_path, backbone_settings: BackboneSettings = RESNET, **train) -> SearchContext:
    config = TrainConfig(**{"epochs": 0.5, "batch_size": 32, "lr": 3e-3, "num_threads": 1, **train})
    return SearchContext(
        "synthetic",
        synthetic_task(size=16),
        backbone_settings,
        config,
        LocalExecutor(),
        RunDirectory(tmp_path / "run"),
        seed=1,
        progress=False,
    )


def test_equinas_e_on_the_resnet(tmp_path) -> None:
    settings = dict(generations=1, population=1, epochs_per_generation=0.25, children_per_parent=3)
    result = run_search(make_method("equinas_e", **settings), context(tmp_path))
    assert len(result.candidates) == 1 + 4 and len(result.best.groups) == 5
    assert {r.spec["backbone"] for r in result.candidates} == {"resnet"}
    assert all(
        r.equivariance["group"] == "D4" and len(r.equivariance["layers"]) == 3 for r in result.candidates
    )
    meta = json.loads((tmp_path / "run" / "search.json").read_text())
    assert meta["backbone"]["backbone"] == "resnet"
    with pytest.raises(ValueError, match="backbone.backbone: 'resnet' -> 'plain'"):
        plain = BackboneSettings(widths=(1, 1, 2), pools_after=(1,), kernel_size=3, hidden=None)
        run_search(make_method("equinas_e", **settings), context(tmp_path, plain), resume=True)


def test_equinas_d_on_the_resnet(tmp_path) -> None:
    result = run_search(make_method("equinas_d", arch_lr=0.05, groups=("paper",)), context(tmp_path))
    assert [r.candidate_id for r in result.candidates] == ["mixed", "discrete"]
    last = result.extras["alpha"][-1]["layers"]
    assert len(last) == 5 and all(sorted(z.values())[-2] == 0 for z in last.values())  # decided
    discrete = ArchSpec.from_dict(result.candidates[1].spec)
    assert discrete.backbone == "resnet" and discrete.groups_per_layer() == result.extras["discrete_groups"]
    assert result.candidates[1].equivariance["output"] is not None


def test_runs_recorded_before_the_backbone_option_resume_as_plain(tmp_path) -> None:
    plain = BackboneSettings(widths=(1, 2), pools_after=(0,), kernel_size=3, hidden=None)
    ctx = context(tmp_path, plain)
    run_search(make_method("fixed", groups=("C4",)), ctx)
    meta_path = tmp_path / "run" / "search.json"
    meta = json.loads(meta_path.read_text())
    del meta["backbone"]["backbone"]
    meta_path.write_text(json.dumps(meta))
    result = run_search(make_method("fixed", groups=("C4",)), context(tmp_path, plain), resume=True)
    assert [r.candidate_id for r in result.candidates] == ["fixed-C4"]


def test_resnet_macs_per_image_in_train_mode_with_a_hidden_head() -> None:
    """By hand: stem, two 3x3 convs per block, the 1x1 projection, the head's two linear layers
    (a batch-norm head needs more than one image per train-mode probe)."""
    model = build_network(backbone("D4", **SMALL))
    stem = 16 * 16 * 16 * 1 * 9
    block1 = 2 * (16 * 16 * 16 * 16 * 9)
    block2 = 8 * 8 * 24 * 16 * 9 + 8 * 8 * 24 * 24 * 9 + 8 * 8 * 24 * 16
    head = 3 * 6 + 6 * 10
    for train_mode in (True, False):
        assert macs_per_image(model, torch.zeros(1, 16, 16), train_mode) == stem + block1 + block2 + head


@needs_data
def test_cli_trains_evaluates_and_searches_a_resnet(tmp_path, capsys) -> None:
    small = [
        *[
            "--task",
            "mnist",
            "--train-size",
            "64",
            "--val-size",
            "32",
            "--test-size",
            "32",
            "--epochs",
            "0.5",
        ],
        *SMALL_NET_ARGS,
        *["--backbone", "resnet"],
    ]
    run = tmp_path / "train"
    assert main(["train", *small, "--arch", "C4", "--run-dir", str(run), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"] == ["C4"] * 3
    assert ArchSpec.load(run / "spec.json").backbone == "resnet"
    out = tmp_path / "eval.json"
    sizes = ["--task", "mnist", "--test-size", "32", "--val-size", "32"]
    assert main(["evaluate", str(run / "checkpoint.pt"), *sizes, "--output", str(out)]) == 0
    equivariance = json.loads(out.read_text())["equivariance"]
    assert len(equivariance["layers"]) == 2 and equivariance["group"] == "D4"
    search = ["search", "fixed", *small, "--groups", "C1", "--run-dir", str(tmp_path / "s"), "--quiet"]
    assert main(search) == 0
    assert json.loads((tmp_path / "s" / "search.json").read_text())["backbone"]["backbone"] == "resnet"
    capsys.readouterr()
    assert main([*search[:-1], "--resume", "--backbone", "plain", "--quiet"]) == 2
    assert "backbone.backbone: 'resnet' -> 'plain'" in capsys.readouterr().err


def test_equinas_testing_reads_resnets_and_their_blocks() -> None:
    model = network(["D4", "C4", "D4", "D2", "C4"])
    assert assert_equivariant(model).group == "C2"  # the intersection of the layers' groups
    block = model.residual_blocks[1]  # the projection block: features in, features out
    assert block.input_shape_hint() == "[B, 2, 8, H, W]" and block.output_shape_hint() == "[B, 3, 8, H, W]"
    assert assert_equivariant(block).group == "C2"


def test_equinas_g_on_the_resnet(tmp_path) -> None:
    """The signal covers every conv of a unit (a block's skip projection shares its group) and the
    found network's groups follow the recorded relaxations."""
    # 24 steps: a first part of 12; alpha 0.5 over 5 layers and 1 decision (level 0.1) needs 5
    method = make_method("equinas_g", decide_at=(0.5,), alpha=0.5)
    result = run_search(method, context(tmp_path, epochs=2.0, batch_size=8))
    first, last = result.candidates
    assert len(first.extra["signal"]["tests"]) == 5 == len(last.groups)
    (decision,) = result.extras["decisions"]
    assert [m["to"] or m["from"] for m in decision["layers"]] == last.groups
    assert last.spec["backbone"] == "resnet" and last.groups != first.groups
