"""ResNet (Gorishniy et al. 2021) and ARM-Net (Cai et al. 2021): the block structure and residual path,
the exponential neurons against exp(sum w log e) written out, and the sparse entmax attention."""

from __future__ import annotations

import math

import pytest
import torch
from entmax import entmax_bisect
from torch import nn

from zoo.models.armnet import LOG_EPS, ARMNet, ExponentialNeurons
from zoo.models.resnet import ResidualBlock, ResNet
from zoo.nn import OneRowBatchNorm1d, embed_flat
from zoo.testing import planted_batch, tiny_batch, tiny_spec


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- ResNet ----------------------------------------------------------------------------------------


def test_resnet_blocks_have_the_papers_layers_and_widths():
    spec = tiny_spec(3, 2)  # 3 categoricals, 2 numerics + 1 missing indicator
    model = ResNet(feature_spec=spec, d_embedding=4, n_blocks=3, d_block=10, d_hidden_multiplier=1.5)
    assert model.stem.in_features == 3 * 4 + spec.n_numeric
    assert model.stem.out_features == 10
    assert len(model.blocks) == 3
    for block in model.blocks:
        layers = [type(m) for m in block.children()]
        assert layers == [OneRowBatchNorm1d, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.Dropout]
        assert (block.linear0.in_features, block.linear0.out_features) == (10, 15)
        assert (block.linear1.in_features, block.linear1.out_features) == (15, 10)
    head = [type(m) for m in model.head]
    assert head == [OneRowBatchNorm1d, nn.ReLU, nn.Linear]
    assert model.head[-1].out_features == 1
    assert ResNet(feature_spec=spec).blocks[0].linear0.out_features == 2 * 192  # defaults: 2 x d_block


def test_resnet_with_layer_norm_normalises_each_row_alike_in_training_and_scoring():
    # normalization="layer" puts LayerNorm where the paper has BatchNorm: a row's output depends on
    # that row alone, so it is the same in a batch of one, a mixed batch, training mode and eval mode.
    torch.manual_seed(0)
    spec = tiny_spec(3, 2)
    model = ResNet(
        feature_spec=spec, d_block=8, normalization="layer", hidden_dropout=0.0, residual_dropout=0.0
    )
    assert [type(m) for m in model.head] == [nn.LayerNorm, nn.ReLU, nn.Linear]
    assert all(type(block.norm) is nn.LayerNorm for block in model.blocks)
    batch = tiny_batch(spec, 6)
    first = {key: value[:1] for key, value in batch.items()}
    with torch.no_grad():
        trained = model.train()(batch)
        torch.testing.assert_close(model.eval()(batch), trained)
        torch.testing.assert_close(model(first), trained[:1])
        block = model.blocks[0]
        x = torch.randn(4, 8)
        normed = torch.nn.functional.layer_norm(x, (8,), block.norm.weight, block.norm.bias, block.norm.eps)
        torch.testing.assert_close(block(x), x + block.linear1(torch.relu(block.linear0(normed))))
    with pytest.raises(
        ValueError, match=r"normalization='group', expected one of \['batch', 'layer', 'none'\]"
    ):
        ResNet(feature_spec=spec, normalization="group")


def test_resnet_without_normalisation_is_the_residual_mlp_written_out():
    # normalization="none": x + Dropout(Linear(Dropout(ReLU(Linear(x))))), head Linear(ReLU(x)).
    torch.manual_seed(0)
    spec = tiny_spec(3, 2)
    model = ResNet(
        feature_spec=spec, d_block=8, normalization="none", hidden_dropout=0.0, residual_dropout=0.0
    )
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.LayerNorm)) for m in model.modules())
    batch = tiny_batch(spec, 6)
    with torch.no_grad():
        x_num = embed_flat(model.embed_numeric, batch["x_num"])
        x = model.stem(torch.cat([model.embed(batch["x_cat"]).flatten(1), x_num], dim=1))
        for block in model.blocks:
            x = x + block.linear1(torch.relu(block.linear0(x)))
        expected = model.head[-1](torch.relu(x)).squeeze(-1)
        torch.testing.assert_close(model.train()(batch), expected)
        torch.testing.assert_close(model.eval()(batch), expected)


def test_resnet_block_is_the_identity_when_its_last_linear_is_zero():
    torch.manual_seed(0)
    block = ResidualBlock(6, 12, hidden_dropout=0.5, residual_dropout=0.5).train()
    x = torch.randn(8, 6)
    assert not torch.allclose(block(x), x)  # the branch is live...
    with torch.no_grad():
        block.linear1.weight.zero_()
        block.linear1.bias.zero_()
    torch.testing.assert_close(block(x), x)  # ...and the skip path carries x unchanged


def test_resnet_block_matches_the_papers_equation():
    torch.manual_seed(0)
    block = ResidualBlock(5, 7, hidden_dropout=0.0, residual_dropout=0.0).eval()
    with torch.no_grad():
        block.norm.running_mean.normal_()
        block.norm.running_var.uniform_(0.5, 2.0)
    x = torch.randn(4, 5)
    normed = (x - block.norm.running_mean) / torch.sqrt(block.norm.running_var + block.norm.eps)
    normed = normed * block.norm.weight + block.norm.bias
    expected = x + block.linear1(torch.relu(block.linear0(normed)))
    torch.testing.assert_close(block(x), expected)


def test_resnet_forward_is_stem_blocks_head():
    spec = tiny_spec()
    model = ResNet(feature_spec=spec, n_blocks=2, d_block=8).eval()
    batch = tiny_batch(spec, 5)
    x = torch.cat([model.embed(batch["x_cat"]).flatten(1), batch["x_num"]], dim=1)
    expected = model.head(model.blocks[1](model.blocks[0](model.stem(x)))).squeeze(-1)
    torch.testing.assert_close(model(batch), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_blocks": -1}, r"n_blocks=-1"),
        ({"d_block": 0}, r"d_block=0"),
        ({"d_hidden_multiplier": 0.001}, r"d_hidden_multiplier=0.001"),
        ({"hidden_dropout": 1.0}, r"hidden_dropout=1.0"),
        ({"residual_dropout": -0.1}, r"residual_dropout=-0.1"),
    ],
)
def test_resnet_rejects_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNet(feature_spec=tiny_spec(), **kwargs)


# --- ARM-Net ---------------------------------------------------------------------------------------


def test_exponential_neurons_are_exp_of_weighted_sums_of_logs():
    torch.manual_seed(0)
    layer = ExponentialNeurons(3, 2, 4, alpha=1.7)
    tokens = torch.randn(2, 3, 2)
    w = layer.weights(tokens)
    assert w.shape == (2, 4, 3)
    # Log-space embeddings (the authors' code): y_bod = exp(sum_f w_bof e_bfd).
    expected = torch.empty(2, 4, 2)
    for b in range(2):
        for o in range(4):
            for d in range(2):
                expected[b, o, d] = torch.exp(sum(w[b, o, f] * tokens[b, f, d] for f in range(3)))
    torch.testing.assert_close(layer(tokens), expected)
    # log_abs: the product of the fields' magnitudes raised to the learned powers.
    layer.log_abs = True
    magnitudes = tokens.abs() + LOG_EPS
    product = torch.ones(2, 4, 2)
    for f in range(3):
        product = product * magnitudes[:, None, f, :] ** w[:, :, f, None]
    torch.testing.assert_close(layer(tokens), product)


def slow_scores(layer: ExponentialNeurons, tokens: torch.Tensor) -> torch.Tensor:
    """ARM-Net's bilinear scores q_o . (W e_bf) / sqrt(d_k), one entry at a time: [B, o, f]."""
    W, q = layer.key.weight.detach().double(), layer.query.detach().double()
    d_key, d_embedding = W.shape
    n_rows, n_fields, _ = tokens.shape
    scores = torch.empty(n_rows, layer.n_neurons, n_fields, dtype=torch.float64)
    for b in range(n_rows):
        for o in range(layer.n_neurons):
            for f in range(n_fields):
                token = [float(tokens[b, f, d]) for d in range(d_embedding)]
                key = [sum(float(W[k, d]) * token[d] for d in range(d_embedding)) for k in range(d_key)]
                scores[b, o, f] = sum(float(q[o, k]) * key[k] for k in range(d_key)) / math.sqrt(d_key)
    return scores


def test_exponential_neurons_weights_are_gates_times_values():
    torch.manual_seed(0)
    layer = ExponentialNeurons(4, 3, 5, alpha=1.0)  # alpha = 1: softmax
    tokens = torch.randn(2, 4, 3)
    scores = slow_scores(layer, tokens)
    gates = torch.empty_like(scores)
    for b in range(2):
        for o in range(5):
            exps = [math.exp(float(s)) for s in scores[b, o]]
            gates[b, o] = torch.tensor([e / sum(exps) for e in exps])
    torch.testing.assert_close(layer.gates(tokens).double(), gates)
    value = layer.value.detach().double()
    weights = torch.tensor(
        [[[float(gates[b, o, f] * value[o, f]) for f in range(4)] for o in range(5)] for b in range(2)]
    )
    torch.testing.assert_close(layer.weights(tokens).double(), weights.double())


def test_entmax_attention_is_sparse_and_rows_sum_to_one():
    torch.manual_seed(0)
    layer = ExponentialNeurons(12, 8, 32, alpha=1.7)
    tokens = torch.randn(16, 12, 8) * 3
    gates = layer.gates(tokens)
    torch.testing.assert_close(gates.sum(-1), torch.ones(16, 32))
    assert (gates >= 0).all()
    zeros = (gates == 0).float().mean()
    assert 0.1 < zeros < 0.95, f"share of exact zeros {zeros:.2f}"
    # A zero gate gives the field no power at all in that neuron, whatever its value weight.
    assert (layer.weights(tokens)[gates == 0] == 0).all()
    # The shortened bisection agrees with the package's default 50 steps to float32 precision.
    scores = slow_scores(layer, tokens[:2]).float()
    reference = entmax_bisect(scores, alpha=1.7, dim=-1, n_iter=50)
    torch.testing.assert_close(gates[:2], reference, atol=1e-6, rtol=0)
    # Softmax (alpha = 1) has no exact zeros on the same scores.
    layer.alpha = 1.0
    assert (layer.gates(tokens) > 0).all()


def test_exponential_neurons_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"alpha=0.5"):
        ExponentialNeurons(3, 2, 4, alpha=0.5)
    with pytest.raises(ValueError, match=r"n_neurons=0"):
        ExponentialNeurons(3, 2, 0)
    with pytest.raises(ValueError, match=r"tokens.shape=\(2, 4, 2\)"):
        ExponentialNeurons(3, 2, 4)(torch.randn(2, 4, 2))


def test_armnet_is_tokens_neurons_batchnorm_mlp():
    spec = tiny_spec(2, 2)
    model = ARMNet(feature_spec=spec, d_embedding=4, n_neurons=6, mlp_layers=2, mlp_width=16).eval()
    batch = tiny_batch(spec, 5)
    tokens = model.tokens(batch["x_cat"], batch["x_num"])
    assert tokens.shape == (5, spec.n_categorical + spec.n_numeric, 4)  # one token per field
    neurons = model.neurons(tokens)
    assert neurons.shape == (5, 6, 4)
    # Eval-mode BatchNorm over the neurons: one mean and variance per neuron.
    norm = model.norm
    normed = (neurons - norm.running_mean[:, None]) / torch.sqrt(norm.running_var[:, None] + norm.eps)
    normed = normed * norm.weight[:, None] + norm.bias[:, None]
    torch.testing.assert_close(model(batch), model.mlp(normed.flatten(1)).squeeze(-1))
    linear = [m for m in model.mlp.net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(24, 16), (16, 16), (16, 1)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.mlp.net) == 2
    assert model.interaction_weights(batch).shape == (5, 6, tokens.shape[1])


def test_armnet_eval_mode_matches_training_mode_after_a_few_steps():
    # The neurons start as 1 + O(0.01): their BatchNorm must not keep normalising by its initial
    # variance 1 in eval mode (momentum 0.1 would need ~100 steps to forget it; outputs went flat).
    torch.manual_seed(0)
    spec = tiny_spec(3, 2)
    model = ARMNet(feature_spec=spec, d_embedding=4, n_neurons=8, mlp_layers=1, mlp_width=16)
    batch = planted_batch(spec, 128)
    optimizer = torch.optim.Adam(model.parameters(), lr=model.learning_rate)
    for _ in range(5):
        loss = model.loss(batch, model(batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        neurons = model.neurons(model.tokens(batch["x_cat"], batch["x_num"]))
        assert neurons.var(dim=(0, 2)).max() < 1e-2  # the regime the choice is for
        train_spread = model.train()(batch).std()
        eval_spread = model.eval()(batch).std()
    assert 0.3 < eval_spread / train_spread < 3, f"eval/train logit spread {eval_spread / train_spread:.3f}"


def test_armnet_exponent_is_capped_so_outliers_stay_finite():
    spec = tiny_spec(0, 2, missing_indicator=False)
    model = ARMNet(feature_spec=spec, d_embedding=3, n_neurons=4)
    with torch.no_grad():
        model.tokens.tokenize.weight.fill_(50.0)
        model.neurons.value.fill_(1.0)
    batch = tiny_batch(spec, 4)
    batch["x_num"] = torch.full_like(batch["x_num"], 100.0)  # an outlier far past the training range
    model.train()
    logits = model(batch)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_armnet_fits_a_pure_interaction():
    # y = 1 exactly when two numerics share a sign: no main effect, only their product.
    torch.manual_seed(0)
    spec = tiny_spec(0, 2, missing_indicator=False)
    x = torch.randn(256, 2)
    batch = {
        "x_cat": torch.zeros(256, 0, dtype=torch.long),
        "x_num": x,
        "y": (x[:, 0] * x[:, 1] > 0).float(),
    }
    model = ARMNet(feature_spec=spec, d_embedding=4, n_neurons=8, mlp_layers=1, mlp_width=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=model.learning_rate)
    for _ in range(100):
        loss = model.loss(batch, model(batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = ((model(batch) > 0).float() == batch["y"]).float().mean()
    assert accuracy > 0.9, f"accuracy {accuracy:.3f} on the sign-agreement task"


def test_armnet_plus_joins_armnet_and_a_dnn_starting_at_their_average():
    # ARM-Net+ (ensemble: true): a DNN over its own field embeddings beside ARM-Net, one linear join.
    torch.manual_seed(0)
    spec = tiny_spec(2, 2)
    sizes = {"d_embedding": 4, "n_neurons": 6, "mlp_layers": 1, "mlp_width": 8}
    model = ARMNet(feature_spec=spec, **sizes, ensemble=True, deep_layers=2, deep_width=12).eval()
    batch = tiny_batch(spec, 5)
    assert model.deep_tokens is not model.tokens  # separate embeddings, as the authors'
    linear = [m for m in model.deep.net if isinstance(m, nn.Linear)]
    n_fields = spec.n_categorical + spec.n_numeric
    assert [(m.in_features, m.out_features) for m in linear] == [(n_fields * 4, 12), (12, 12), (12, 1)]
    with torch.no_grad():
        neurons = model.norm(model.neurons(model.tokens(batch["x_cat"], batch["x_num"])))
        arm = model.mlp(neurons.flatten(1)).squeeze(-1)
        deep = model.deep(model.deep_tokens(batch["x_cat"], batch["x_num"]).flatten(1)).squeeze(-1)
        torch.testing.assert_close(model(batch), 0.5 * arm + 0.5 * deep)
        model.join.weight.copy_(torch.tensor([[2.0, -1.0]]))
        model.join.bias.fill_(0.25)
        torch.testing.assert_close(model(batch), 2.0 * arm - deep + 0.25)
    plain = ARMNet(feature_spec=spec, d_embedding=4, n_neurons=6)
    assert not any(name.startswith(("deep", "join")) for name, _ in plain.named_parameters())
    with pytest.raises(ValueError, match=r"deep_layers=0"):
        ARMNet(feature_spec=spec, ensemble=True, deep_layers=0)
