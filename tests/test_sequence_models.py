"""The AFCC paper's sequence baselines (CNN, RNN, LSTM): the token order, the layers against their
equations written out, the head reading the last state, and rnn/lstm as one class."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.cnn import CNN
from zoo.models.recurrent import Recurrent
from zoo.testing import check_builds_from_edge_specs, default_config, tiny_batch, tiny_spec


def constructor_defaults(cls: type) -> dict[str, object]:
    params = inspect.signature(cls).parameters.values()
    return {p.name: p.default for p in params if p.name != "feature_spec"}


def as_config(defaults: dict[str, object]) -> dict[str, object]:
    """Constructor defaults as a YAML config holds them (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}


@pytest.mark.parametrize("cls", [CNN, Recurrent])
def test_tokens_are_categorical_fields_then_numeric_fields_in_spec_order(cls):
    spec = tiny_spec(2, 2)  # numerics: num_0, num_1 and num_1's missing indicator
    model = cls(feature_spec=spec, d_embedding=4).eval()
    assert model.token_names == ("cat_0", "cat_1", "num_0", "num_1", "num_1__missing")
    batch = tiny_batch(spec, 5)
    tokens = model.tokens(batch)
    assert tokens.shape == (5, 5, 4)
    table, offsets = model.embed.embedding.weight, model.embed.offsets
    for j in range(2):
        torch.testing.assert_close(tokens[:, j], table[batch["x_cat"][:, j] + offsets[j]])
    # Numeric tokens x_j w_j + b_j: with a bias, a value at the mean is not the zero token.
    expected = batch["x_num"][..., None] * model.tokenize.weight + model.tokenize.bias
    torch.testing.assert_close(tokens[:, 2:], expected)
    assert model.tokenize.bias is not None


def test_rnn_is_elmans_recurrence_with_the_head_on_the_last_state():
    torch.manual_seed(0)
    spec = tiny_spec(2, 2)
    model = Recurrent(feature_spec=spec, cell="rnn", d_embedding=4, hidden_size=6).eval()
    batch = tiny_batch(spec, 7)
    tokens = model.tokens(batch)
    rnn = model.recurrent

    def logit_of(sequence: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(sequence.shape[0], 6)
        for t in sequence.unbind(1):  # h_l = tanh(W_ih t_l + b_ih + W_hh h_(l-1) + b_hh)
            h = torch.tanh(t @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0)
        return model.head(h).squeeze(-1)

    with torch.no_grad():
        got = model(batch)
        torch.testing.assert_close(got, logit_of(tokens))
        # The order matters: the same tokens read in reverse (or two fields swapped) give other logits.
        assert not torch.allclose(got, logit_of(tokens.flip(1)), atol=1e-4)
        swapped = tokens[:, [1, 0, 2, 3, 4]]
        assert not torch.allclose(got, logit_of(swapped), atol=1e-4)


def test_lstm_with_two_layers_reads_the_top_layers_last_state():
    torch.manual_seed(0)
    spec = tiny_spec(2, 2)
    model = Recurrent(feature_spec=spec, cell="lstm", n_layers=2, hidden_size=5).eval()
    assert isinstance(model.recurrent, nn.LSTM)
    assert model.recurrent.num_layers == 2
    assert hasattr(model.recurrent, "weight_ih_l1") and not hasattr(model.recurrent, "weight_ih_l2")
    batch = tiny_batch(spec, 6)
    with torch.no_grad():
        tokens = model.tokens(batch)
        outputs, (h_n, _) = model.recurrent(tokens)  # outputs: the top layer at every step
        got = model(batch)
        torch.testing.assert_close(got, model.head(outputs[:, -1]).squeeze(-1))
        # Neither the first step nor the bottom layer's last state.
        assert not torch.allclose(got, model.head(outputs[:, 0]).squeeze(-1), atol=1e-4)
        assert not torch.allclose(got, model.head(h_n[0]).squeeze(-1), atol=1e-4)
        # The last field (a missing indicator here) reaches the logit.
        changed = {**batch, "x_num": batch["x_num"].clone()}
        changed["x_num"][:, -1] = 1 - changed["x_num"][:, -1]
        assert not torch.allclose(got, model(changed), atol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_mean_readout_reads_the_mean_of_the_top_layers_states(cell):
    torch.manual_seed(0)
    spec = tiny_spec(2, 2)
    model = Recurrent(feature_spec=spec, cell=cell, n_layers=2, hidden_size=5, readout="mean").eval()
    batch = tiny_batch(spec, 6)
    with torch.no_grad():
        outputs, _ = model.recurrent(model.tokens(batch))
        got = model(batch)
        torch.testing.assert_close(got, model.head(outputs.mean(dim=1)).squeeze(-1))
        assert not torch.allclose(got, model.head(outputs[:, -1]).squeeze(-1), atol=1e-4)
    with pytest.raises(ValueError, match=r"readout='max', expected one of \['last', 'mean'\]"):
        Recurrent(feature_spec=spec, readout="max")  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_bidirectional_reads_the_forward_pass_after_the_last_field_and_the_backward_after_the_first(
    cell,
):
    torch.manual_seed(0)
    spec = tiny_spec(2, 2)
    model = Recurrent(feature_spec=spec, cell=cell, n_layers=2, hidden_size=5, bidirectional=True).eval()
    assert model.head.in_features == 10
    batch = tiny_batch(spec, 6)
    with torch.no_grad():
        outputs, _ = model.recurrent(model.tokens(batch))  # the top layer: [B, L, forward | backward]
        got = model(batch)
        both_ends = torch.cat([outputs[:, -1, :5], outputs[:, 0, 5:]], dim=-1)
        torch.testing.assert_close(got, model.head(both_ends).squeeze(-1))
        assert not torch.allclose(got, model.head(outputs[:, -1]).squeeze(-1), atol=1e-4)
        mean = Recurrent(feature_spec=spec, cell=cell, bidirectional=True, readout="mean").eval()
        assert mean(batch).shape == (6,)
    with pytest.raises(ValueError, match=r"bidirectional='yes', expected true or false"):
        Recurrent(feature_spec=spec, cell=cell, bidirectional="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_orthogonal_init_makes_each_gate_block_of_every_recurrent_weight_orthogonal(cell):
    torch.manual_seed(0)
    spec = tiny_spec(2, 2)
    options = {"cell": cell, "n_layers": 2, "hidden_size": 6, "bidirectional": True}
    model = Recurrent(feature_spec=spec, recurrent_init="orthogonal", **options)
    plain = Recurrent(feature_spec=spec, **options)
    gates = 4 if cell == "lstm" else 1
    recurrent = [name for name, _ in model.recurrent.named_parameters() if name.startswith("weight_hh")]
    assert len(recurrent) == 4  # two layers, two directions
    for name in recurrent:
        blocks = getattr(model.recurrent, name).split(6)
        assert len(blocks) == gates
        for block in blocks:
            torch.testing.assert_close(block @ block.T, torch.eye(6), atol=1e-5, rtol=0)
        # torch's own start, uniform(+-1/sqrt(h)), is not orthogonal.
        block = getattr(plain.recurrent, name)[:6]
        assert not torch.allclose(block @ block.T, torch.eye(6), atol=0.1)
    # Only W_hh changes: the input weights and biases keep torch's initialisation's range.
    bound = 1 / 6**0.5
    for name, weight in model.recurrent.named_parameters():
        if not name.startswith("weight_hh"):
            assert weight.abs().max() <= bound
    with pytest.raises(
        ValueError, match=r"recurrent_init='identity', expected one of \['torch', 'orthogonal'\]"
    ):
        Recurrent(feature_spec=spec, recurrent_init="identity")  # type: ignore[arg-type]


def test_lstm_with_two_layers_builds_and_trains_on_the_edge_specs(tmp_path):
    # No categorical, no numeric, a single categorical and a single numeric field (a sequence of
    # one); every parameter of both layers gets a gradient.
    check_builds_from_edge_specs("lstm", tmp_path, overrides={"n_layers": 2})


def test_cnn_pools_max_and_mean_of_two_same_padded_convolutions():
    torch.manual_seed(0)
    spec = tiny_spec(3, 2)
    model = CNN(feature_spec=spec, d_embedding=4, channels=(5, 6), hidden=(3,)).eval()
    batch = tiny_batch(spec, 4)
    conv1, conv2 = (m for m in model.conv if isinstance(m, nn.Conv1d))
    with torch.no_grad():
        x = model.tokens(batch).transpose(1, 2)  # [B, d, L]
        h = F.relu(F.conv1d(x, conv1.weight, conv1.bias, padding=1))
        h = F.relu(F.conv1d(h, conv2.weight, conv2.bias, padding=1))
        assert h.shape == (4, 6, 6)  # the length is kept: L = 3 categorical + 3 numeric
        pooled = torch.cat([h.max(dim=2).values, h.mean(dim=2)], dim=1)
        seen = []  # what the head reads, caught on its way in
        model.head.register_forward_hook(lambda module, args, out: seen.append(args[0]))
        logits = model(batch)
        torch.testing.assert_close(seen[0], pooled)
        torch.testing.assert_close(logits, model.head(pooled).squeeze(-1))


@pytest.mark.parametrize("n_categorical, n_numeric", [(1, 0), (0, 1), (3, 2)])
def test_cnn_sees_local_windows_and_keeps_the_length(n_categorical, n_numeric):
    # Two kernel-3 layers: position l sees tokens l-2..l+2, so changing the first token leaves
    # positions 3.. alone. One field is a sequence of length 1.
    torch.manual_seed(0)
    spec = tiny_spec(n_categorical, n_numeric, missing_indicator=False)
    model = CNN(feature_spec=spec).eval()
    length = n_categorical + n_numeric
    tokens = torch.randn(2, length, 16)
    changed = tokens.clone()
    changed[:, 0] += 1.0
    with torch.no_grad():
        before, after = model.features(tokens), model.features(changed)
        assert before.shape == (2, 64, length)
        assert not torch.allclose(before[..., :3], after[..., :3])
        torch.testing.assert_close(before[..., 3:], after[..., 3:])
        assert torch.isfinite(model(tiny_batch(spec, 3))).all()


def test_rnn_and_lstm_are_one_class_whose_configs_differ_in_cell_rate_width_embedding_and_readout():
    rnn, lstm, cnn = (
        {k: v for k, v in default_config(name).items() if k != "description"}
        for name in ("rnn", "lstm", "cnn")
    )
    defaults = as_config(constructor_defaults(Recurrent))
    # rnn is the constructor's defaults but for the numeric embedding and the orthogonal start of
    # W_hh (chosen on the benchmark suite; the constructor keeps torch's layout so checkpoints
    # saved without them load as saved); lstm changes the embedding too, and the cell, takes the
    # paper's rate, and has 128 units and reads the mean of its states (the suite's).
    assert {k for k in defaults if rnn[k] != defaults[k]} == {"numeric_embedding", "recurrent_init"}
    assert rnn["recurrent_init"] == "orthogonal"
    changed = {"cell", "learning_rate", "numeric_embedding", "readout", "hidden_size"}
    assert {k for k in defaults if lstm[k] != defaults[k]} == changed
    assert rnn["numeric_embedding"] == lstm["numeric_embedding"] == "piecewise_linear"
    assert (lstm["cell"], lstm["learning_rate"], lstm["readout"]) == ("lstm", 3e-3, "mean")
    assert (rnn["hidden_size"], lstm["hidden_size"]) == (64, 128)
    assert rnn["learning_rate"] == cnn["learning_rate"] == 1e-3  # the paper's Table 2
    cnn_defaults = as_config(constructor_defaults(CNN))
    assert {k for k in cnn_defaults if cnn[k] != cnn_defaults[k]} == {"numeric_embedding"}
    assert cnn["numeric_embedding"] == "piecewise_linear"
    spec = tiny_spec()
    for config, module in ((rnn, nn.RNN), (lstm, nn.LSTM)):
        model = Recurrent(feature_spec=spec, **{k: v for k, v in config.items() if k != "name"})
        assert type(model.recurrent) is module
        assert model.recurrent.num_layers == 1 and model.recurrent.hidden_size == config["hidden_size"]


def test_bad_hyperparameters_are_refused_with_the_value():
    spec = tiny_spec()
    with pytest.raises(ValueError, match=r"cell='gru', expected one of \['rnn', 'lstm'\]"):
        Recurrent(feature_spec=spec, cell="gru")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"n_layers=0"):
        Recurrent(feature_spec=spec, n_layers=0)
    with pytest.raises(ValueError, match=r"kernel_size=2, expected an odd"):
        CNN(feature_spec=spec, kernel_size=2)
    with pytest.raises(ValueError, match=r"channels=\[\]"):
        CNN(feature_spec=spec, channels=())
    for cls in (CNN, Recurrent):
        with pytest.raises(ValueError, match=r"no fields"):
            cls(feature_spec=tiny_spec(0, 0))
