"""The shared layers in `zoo.nn`: shapes, the paper formulas against explicit loops, edge cases."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from zoo.nn import (
    MLP,
    SENET,
    AttentionPooling,
    BilinearInteraction,
    FieldAttention,
    FieldEmbedding,
    FMInteraction,
    NumericEmbedding,
    NumericTokenizer,
    OneHotLinear,
    bins_from_edges,
    select,
)

CARDINALITIES = [3, 5, 2]
N_NUMERIC, N_FIELDS, D = 4, 5, 6
EDGES = [[-1.0, 0.0, 1.0], [-2.0, -1.0, 0.5, 2.0], [0.0, 0.5, 1.0], [-1.0, 0.0, 0.0, 1.0]]


def categorical(batch: int, cardinalities: list[int] = CARDINALITIES) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    columns = [torch.randint(0, c, (batch,), generator=gen) for c in cardinalities]
    return torch.stack(columns, 1) if columns else torch.zeros(batch, 0, dtype=torch.long)


def numeric(batch: int, n: int = N_NUMERIC) -> torch.Tensor:
    return torch.randn(batch, n, generator=torch.Generator().manual_seed(1))


def fields(batch: int, n_fields: int = N_FIELDS, d: int = D) -> torch.Tensor:
    return torch.randn(batch, n_fields, d, generator=torch.Generator().manual_seed(2))


# name -> (build the layer, make an input of batch size B, expected output shape for B)
LAYERS: dict[str, tuple[Callable[[], nn.Module], Callable[[int], torch.Tensor], Callable[[int], tuple]]] = {
    "field_embedding": (lambda: FieldEmbedding(CARDINALITIES, D), categorical, lambda b: (b, 3, D)),
    "one_hot_linear": (lambda: OneHotLinear(CARDINALITIES), categorical, lambda b: (b,)),
    "numeric_tokenizer": (lambda: NumericTokenizer(N_NUMERIC, D), numeric, lambda b: (b, N_NUMERIC, D)),
    "numeric_linear": (
        lambda: NumericEmbedding("linear", N_NUMERIC, D),
        numeric,
        lambda b: (b, N_NUMERIC, D),
    ),
    "numeric_periodic": (
        lambda: NumericEmbedding("periodic", N_NUMERIC, D, n_frequencies=3),
        numeric,
        lambda b: (b, N_NUMERIC, D),
    ),
    "numeric_periodic_lite": (
        lambda: NumericEmbedding("periodic", N_NUMERIC, D, n_frequencies=3, lite=True),
        numeric,
        lambda b: (b, N_NUMERIC, D),
    ),
    "numeric_piecewise_linear": (
        lambda: NumericEmbedding("piecewise_linear", N_NUMERIC, D, bins=EDGES),
        numeric,
        lambda b: (b, N_NUMERIC, D),
    ),
    "numeric_piecewise_linear_a": (
        lambda: NumericEmbedding("piecewise_linear", N_NUMERIC, D, bins=EDGES, version="A", activation=True),
        numeric,
        lambda b: (b, N_NUMERIC, D),
    ),
    "mlp": (lambda: MLP(N_NUMERIC, [8, 4], dropout=0.1, d_out=1), numeric, lambda b: (b, 1)),
    "mlp_batch_norm": (lambda: MLP(N_NUMERIC, [8], batch_norm=True), numeric, lambda b: (b, 8)),
    "senet": (lambda: SENET(N_FIELDS, reduction_ratio=2), fields, lambda b: (b, N_FIELDS, D)),
    "senet_sigmoid_bias": (
        lambda: SENET(N_FIELDS, gate="sigmoid", bias=True),
        fields,
        lambda b: (b, N_FIELDS, D),
    ),
    "bilinear_field_all": (lambda: BilinearInteraction(N_FIELDS, D), fields, lambda b: (b, 10, D)),
    "bilinear_field_each": (
        lambda: BilinearInteraction(N_FIELDS, D, kind="field_each"),
        fields,
        lambda b: (b, 10, D),
    ),
    "bilinear_field_interaction": (
        lambda: BilinearInteraction(N_FIELDS, D, kind="field_interaction"),
        fields,
        lambda b: (b, 10, D),
    ),
    "fm": (FMInteraction, fields, lambda b: (b,)),
    "fm_vector": (lambda: FMInteraction(reduce_sum=False), fields, lambda b: (b, D)),
    "field_attention": (
        lambda: FieldAttention(D, n_heads=2, dropout=0.1),
        fields,
        lambda b: (b, N_FIELDS, D),
    ),
    "field_attention_wide": (
        lambda: FieldAttention(D, n_heads=4, d_attention=8, residual=False, scaled=True),
        fields,
        lambda b: (b, N_FIELDS, 8),
    ),
    "attention_pooling": (lambda: AttentionPooling(D, d_attention=3), fields, lambda b: (b, D)),
    "attention_pooling_tanh": (
        lambda: AttentionPooling(D, d_attention=3, activation="tanh"),
        fields,
        lambda b: (b, D),
    ),
}


@pytest.mark.parametrize("name", LAYERS)
def test_shapes_and_every_parameter_gets_a_finite_gradient(name: str) -> None:
    build, make_input, shape = LAYERS[name]
    torch.manual_seed(0)
    layer = build().train()
    x = make_input(7)
    out = layer(x.requires_grad_() if x.is_floating_point() else x)
    assert out.shape == shape(7)
    out.square().sum().backward()
    # A parameter without a gradient is a DDP error; a non-finite one a silent failure.
    for param_name, param in layer.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
    if x.is_floating_point():
        assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", LAYERS)
def test_batch_of_one_in_eval_mode(name: str) -> None:
    build, make_input, shape = LAYERS[name]
    layer = build().eval()
    with torch.no_grad():
        out = layer(make_input(1))
    assert out.shape == shape(1)
    assert torch.isfinite(out).all()


def test_field_embedding_offsets_and_reserved_indices() -> None:
    embed = FieldEmbedding([2, 4], 3)
    # Indices 0 (missing) and 1 (unseen) are valid in every field, and each field has its own rows.
    x = torch.tensor([[0, 0], [1, 1], [1, 3]])
    table = embed.embedding.weight
    expected = torch.stack([table[[0, 2]], table[[1, 3]], table[[1, 5]]])
    assert torch.equal(embed(x), expected)
    assert table.shape == (6, 3)
    assert 0.03 < float(table.detach().std()) < 0.08  # normal(std=0.05) initialisation


def test_field_embedding_without_fields_has_no_parameters() -> None:
    embed = FieldEmbedding([], 4)
    assert list(embed.parameters()) == []
    assert embed(torch.zeros(3, 0, dtype=torch.long)).shape == (3, 0, 4)


def test_field_embedding_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="cardinalities=\\[3, 1\\]"):
        FieldEmbedding([3, 1], 4)
    with pytest.raises(ValueError, match="d_embedding=0"):
        FieldEmbedding([3], 0)
    with pytest.raises(ValueError, match="x.shape=\\(2, 3\\)"):
        FieldEmbedding([3, 4], 2)(torch.zeros(2, 3, dtype=torch.long))


def test_one_hot_linear_equals_one_hot_times_weights() -> None:
    linear = OneHotLinear(CARDINALITIES)
    assert isinstance(linear.weight, nn.Parameter) and linear.weight.shape == (sum(CARDINALITIES), 1)
    assert not linear.weight.any()  # zero-initialised
    # Weight decay is decided by module type: these coefficients must not sit in an nn.Embedding.
    assert not any(isinstance(m, nn.Embedding) for m in linear.modules())
    with torch.no_grad():
        linear.weight.copy_(torch.randn_like(linear.weight))
    x = categorical(9)
    one_hot = torch.cat(
        [nn.functional.one_hot(x[:, i], c) for i, c in enumerate(CARDINALITIES)], dim=1
    ).float()
    torch.testing.assert_close(linear(x), one_hot @ linear.weight[:, 0])


def test_one_hot_linear_field_weights_are_indexed_like_categories() -> None:
    linear = OneHotLinear([2, 4])
    with torch.no_grad():
        linear.weight.copy_(torch.arange(6.0)[:, None])
    assert [w.tolist() for w in linear.field_weights()] == [[0.0, 1.0], [2.0, 3.0, 4.0, 5.0]]
    # The logit of a row is the sum of its fields' weights at its indices.
    assert linear(torch.tensor([[1, 3]])).tolist() == [1.0 + 5.0]


def test_one_hot_linear_without_fields() -> None:
    linear = OneHotLinear([])
    assert list(linear.parameters()) == []
    assert linear.field_weights() == []
    assert torch.equal(linear(torch.zeros(4, 0, dtype=torch.long)), torch.zeros(4))


def test_numeric_tokenizer_is_per_field_affine() -> None:
    tokenizer = NumericTokenizer(3, 2)
    x = numeric(5, 3)
    expected = torch.stack([x[:, j, None] * tokenizer.weight[j] + tokenizer.bias[j] for j in range(3)], 1)
    torch.testing.assert_close(tokenizer(x), expected)
    assert NumericTokenizer(3, 2, bias=False).bias is None


@pytest.mark.parametrize("kind", ["linear", "periodic", "piecewise_linear"])
def test_numeric_embedding_without_fields_has_no_parameters(kind: str) -> None:
    embed = NumericEmbedding(kind, 0, 4, bins=[])  # type: ignore[arg-type]
    assert list(embed.parameters()) == []
    assert embed(torch.zeros(2, 0)).shape == (2, 0, 4)


def test_numeric_embedding_defaults_follow_the_papers() -> None:
    assert NumericEmbedding("periodic", 2, 4).activation  # PLR
    assert not NumericEmbedding("linear", 2, 4).activation  # FT-Transformer tokens
    assert not NumericEmbedding("piecewise_linear", 2, 4, bins=EDGES[:2]).activation
    # The linear kind with a ReLU is the paper's LR: no negative outputs.
    assert (NumericEmbedding("linear", 2, 4, activation=True)(numeric(8, 2)) >= 0).all()


def test_numeric_embedding_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="needs bins"):
        NumericEmbedding("piecewise_linear", 2, 4)
    with pytest.raises(ValueError, match="len\\(bins\\)=1"):
        NumericEmbedding("piecewise_linear", 2, 4, bins=EDGES[:1])
    with pytest.raises(ValueError, match="kind='quantile'"):
        NumericEmbedding("quantile", 2, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lite=True, activation=False"):
        NumericEmbedding("periodic", 2, 4, lite=True, activation=False)
    with pytest.raises(ValueError, match="frequency_init_scale=0.0"):
        NumericEmbedding("periodic", 2, 4, frequency_init_scale=0.0)
    with pytest.raises(ValueError, match="x.shape=\\(3, 5\\)"):
        NumericEmbedding("periodic", 2, 4)(torch.zeros(3, 5))


def test_bins_from_edges_drops_duplicates_and_widens_constant_fields() -> None:
    bins = bins_from_edges([[0.0, 0.0, 1.0, 2.0, 2.0], [3.0, 3.0], torch.tensor([-1.0, 1.0])])
    assert [b.tolist() for b in bins] == [[0.0, 1.0, 2.0], [2.0, 4.0], [-1.0, 1.0]]
    assert all(b.dtype == torch.float32 for b in bins)
    with pytest.raises(ValueError, match="edges\\[1\\]"):
        bins_from_edges([[0.0, 1.0], []])
    with pytest.raises(ValueError, match="nan"):
        bins_from_edges([[0.0, float("nan")]])


def test_piecewise_linear_embedding_accepts_quantile_edges_with_duplicates() -> None:
    # A discrete field's quantile edges repeat; the layer deduplicates them itself.
    embed = NumericEmbedding("piecewise_linear", 2, 3, bins=[[0.0, 0.0, 1.0, 2.0], [-1.0, 0.0, 1.0, 1.0]])
    assert embed(numeric(4, 2)).shape == (4, 2, 3)


@pytest.mark.parametrize(("version", "activation"), [("A", False), ("A", True), ("B", False), ("B", True)])
def test_piecewise_linear_lookup_equals_rtdl(version: str, activation: bool) -> None:
    # The lookup computes rtdl's encoding-times-weights product: the same outputs and gradients,
    # on fields of one, two and many bins, below the first edge, above the last and on edges.
    import rtdl_num_embeddings

    from zoo.nn.numeric import PiecewiseLinearEmbeddings

    gen = torch.Generator().manual_seed(3)
    edges = [[0.0, 1.0], [-1.0, 0.0, 2.0], torch.linspace(-3, 3, 49), [-2.0, -1.5, 0.0, 0.1, 5.0]]
    bins = bins_from_edges(edges)
    fast = PiecewiseLinearEmbeddings(bins, 5, activation=activation, version=version)  # type: ignore[arg-type]
    nn.init.normal_(fast.linear.weight, generator=gen)  # version B starts the piecewise part at 0
    ref = rtdl_num_embeddings.PiecewiseLinearEmbeddings(bins, 5, activation=activation, version=version)
    ref.load_state_dict(fast.state_dict())  # the same keys: checkpoints move between the two
    x = torch.randn(300, 4, generator=gen) * 3
    x[0] = torch.tensor([b[0] for b in bins])
    x[1] = torch.tensor([b[-1] for b in bins])
    x[2] = torch.tensor([b[len(b) // 2] for b in bins])
    x[3] = torch.tensor([-50.0, 50.0, -50.0, 50.0])
    out_fast, out_ref = fast(x), ref(x)
    torch.testing.assert_close(out_fast, out_ref, rtol=1e-5, atol=1e-5)
    weights = torch.randn(out_ref.shape, generator=gen)
    grads_fast = torch.autograd.grad((out_fast * weights).sum(), list(fast.parameters()))
    grads_ref = torch.autograd.grad((out_ref * weights).sum(), list(ref.parameters()))
    for g_fast, g_ref in zip(grads_fast, grads_ref, strict=True):
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-4, atol=1e-4)


def test_mlp_layers_are_named_and_validated() -> None:
    mlp = MLP(5, [8, 4], dropout=0.2, d_out=1, batch_norm=True)
    names = [name for name, _ in mlp.net.named_children()]
    assert names == [
        *("linear0", "norm0", "activation0", "dropout0"),
        *("linear1", "norm1", "activation1", "dropout1"),
        "head",
    ]
    assert mlp.net[0].in_features == 5 and mlp.d_out == 1
    assert MLP(5, [8, 4]).d_out == 4 and MLP(5, []).d_out == 5
    assert not any(isinstance(m, nn.Dropout) for m in MLP(5, [8]).modules())
    with pytest.raises(ValueError, match="dropout=1.0"):
        MLP(5, [8], dropout=1.0)
    with pytest.raises(ValueError, match="hidden=\\[8, 0\\]"):
        MLP(5, [8, 0])
    with pytest.raises(ValueError, match="d_in=0"):
        MLP(0, [8])
    with pytest.raises(ValueError, match="d_out=0"):
        MLP(5, [8], d_out=0)


def test_fm_equals_pairwise_dot_products() -> None:
    x = fields(3)
    expected = sum((x[:, i] * x[:, j]).sum(-1) for i, j in itertools.combinations(range(N_FIELDS), 2))
    torch.testing.assert_close(FMInteraction()(x), expected)
    torch.testing.assert_close(FMInteraction(reduce_sum=False)(x).sum(-1), expected)
    assert torch.equal(FMInteraction()(torch.zeros(2, 0, D)), torch.zeros(2))


@pytest.mark.parametrize("kind", ["field_all", "field_each", "field_interaction"])
def test_bilinear_equals_explicit_loop(kind: str) -> None:
    layer = BilinearInteraction(4, 3, kind=kind)  # type: ignore[arg-type]
    x = fields(2, 4, 3)
    pairs = list(itertools.combinations(range(4), 2))
    weight = {
        "field_all": lambda p, i: layer.weight[0],
        "field_each": lambda p, i: layer.weight[i],
        "field_interaction": lambda p, i: layer.weight[p],
    }[kind]
    expected = torch.stack([(x[:, i] @ weight(p, i)) * x[:, j] for p, (i, j) in enumerate(pairs)], 1)
    torch.testing.assert_close(layer(x), expected)
    assert layer.weight.shape[0] == {"field_all": 1, "field_each": 3, "field_interaction": 6}[kind]


def test_bilinear_without_pairs_has_no_parameters() -> None:
    layer = BilinearInteraction(1, 3, kind="field_each")
    assert list(layer.parameters()) == []
    assert layer(fields(2, 1, 3)).shape == (2, 0, 3)
    with pytest.raises(ValueError, match="kind='pairwise'"):
        BilinearInteraction(3, 3, kind="pairwise")  # type: ignore[arg-type]


def test_senet_gate_reweights_fields() -> None:
    x = fields(4, 7, 3)
    senet = SENET(7, reduction_ratio=3)
    assert senet.d_reduced == 2 and SENET(2, reduction_ratio=3).d_reduced == 1
    gate = senet.gate(x)
    assert gate.shape == (4, 7) and (gate >= 0).all()  # FiBiNET's ReLU gate
    sigmoid_gate = SENET(7, gate="sigmoid").gate(x)
    assert ((sigmoid_gate > 0) & (sigmoid_gate < 1)).all()
    assert list(SENET(0).parameters()) == [] and SENET(0)(fields(2, 0)).shape == (2, 0, D)
    with pytest.raises(ValueError, match="reduction_ratio=0"):
        SENET(4, reduction_ratio=0)


def test_senet_matches_a_hand_computed_case() -> None:
    # 3 fields of 2 values, r = 3 (one hidden unit). Squeeze: the field means z = (1, 2, -1).
    # Excitation: W1 z = 1 + 2 - 1 = 2, ReLU 2; W2 * 2 = (2, 4, 1); ReLU gate (2, 4, 1).
    x = torch.tensor([[[0.0, 2.0], [1.0, 3.0], [-2.0, 0.0]]])
    senet = SENET(3, reduction_ratio=3)
    with torch.no_grad():
        senet.excitation[0].weight.copy_(torch.tensor([[1.0, 1.0, 1.0]]))
        senet.excitation[2].weight.copy_(torch.tensor([[1.0], [2.0], [0.5]]))
    torch.testing.assert_close(senet.gate(x), torch.tensor([[2.0, 4.0, 1.0]]))
    torch.testing.assert_close(senet(x), torch.tensor([[[0.0, 4.0], [4.0, 12.0], [-2.0, 0.0]]]))
    # With biases and the sigmoid gate: W1 z + 1 = 3, ReLU 3; W2 * 3 + (0, -6, 0) = (3, 0, 1.5).
    gated = SENET(3, reduction_ratio=3, gate="sigmoid", bias=True)
    with torch.no_grad():
        gated.excitation[0].weight.copy_(torch.tensor([[1.0, 1.0, 1.0]]))
        gated.excitation[0].bias.fill_(1.0)
        gated.excitation[2].weight.copy_(torch.tensor([[1.0], [2.0], [0.5]]))
        gated.excitation[2].bias.copy_(torch.tensor([0.0, -6.0, 0.0]))
    sigmoid = [1 / (1 + math.exp(-v)) for v in (3.0, 0.0, 1.5)]
    torch.testing.assert_close(gated.gate(x), torch.tensor([sigmoid]))


def test_attention_pooling_weights_sum_to_one() -> None:
    pool = AttentionPooling(D)
    x = fields(5)
    weights = pool.weights(x)
    assert weights.shape == (5, N_FIELDS) and (weights > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(5))
    torch.testing.assert_close(pool(x), (weights[..., None] * x).sum(1))
    assert torch.equal(pool(torch.zeros(2, 0, D)), torch.zeros(2, D))


def test_field_attention_matches_autoint() -> None:
    layer = FieldAttention(4, n_heads=2)
    x = fields(3, 5, 4)
    weights = layer.attention_weights(x)
    assert weights.shape == (3, 2, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 5))
    # ReLU(concat_h sum_k a^h_mk W^h_V e_k + W_Res e_m), Eqs. 5-8.
    values = layer.value(x).unflatten(-1, (2, 2)).transpose(1, 2)
    attended = (weights @ values).transpose(1, 2).flatten(-2)
    torch.testing.assert_close(layer(x), torch.relu(attended + layer.residual(x)))
    assert FieldAttention(4)(torch.zeros(2, 0, 4)).shape == (2, 0, 4)


def test_field_attention_rejects_width_not_divisible_by_heads() -> None:
    with pytest.raises(ValueError, match="d_attention=10 .*n_heads=3"):
        FieldAttention(10, n_heads=3)
    with pytest.raises(ValueError, match="d_attention=6"):
        FieldAttention(8, n_heads=4, d_attention=6)
    with pytest.raises(ValueError, match="dropout=1"):
        FieldAttention(8, dropout=1)


def test_select_is_a_no_op_for_all_columns() -> None:
    x = categorical(3)
    assert select(x, [0, 1, 2]) is x
    assert torch.equal(select(x, [2, 0]), x[:, [2, 0]])
    assert select(x, []).shape == (3, 0)


def test_feature_wise_linear_keeps_features_independent():
    from zoo.nn import FeatureWiseLinear

    layer = FeatureWiseLinear(3, 2, 4)
    x = torch.randn(5, 3, 2)
    out = layer(x)
    assert out.shape == (5, 3, 4)
    changed = x.clone()
    changed[:, 1] += 1.0  # only feature 1 moves: the other features' outputs stay put
    after = layer(changed)
    torch.testing.assert_close(after[:, [0, 2]], out[:, [0, 2]])
    assert not torch.allclose(after[:, 1], out[:, 1])
    assert sum(p.numel() for p in FeatureWiseLinear(0, 2, 4).parameters()) == 0


@pytest.mark.parametrize("init_std", [0.0, -0.1, float("nan")])
def test_numeric_tokenizer_refuses_a_bad_initial_scale(init_std) -> None:
    with pytest.raises(ValueError, match=r"init_std=.*expected a positive number or None"):
        NumericTokenizer(3, 4, init_std=init_std)
    assert float(NumericTokenizer(3, 4, init_std=0.05).weight.std()) < 0.2  # the good value is used
