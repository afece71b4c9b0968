"""RNN and LSTM baselines of the AFCC paper: a recurrent network over the fields read as a sequence.

"Adaptive Feature Cross-Compression for Credit Default Prediction" (IEEE Access 2023) compares
AFCC with an RNN and an LSTM (Table 2: Adam, learning rates 1e-3 and 3e-3) and gives nothing more.
Here a row is a sequence of L = m + n field tokens t_1..t_L (d = 16): the m categorical embeddings
in spec order, then the n numeric tokens x_j w_j + b_j in x_num's order (missing indicators
included). The recurrence runs over them from t_1 and the head reads the state after t_L:

    rnn:   h_l = tanh(W_ih t_l + b_ih + W_hh h_(l-1) + b_hh),   h_0 = 0       (Elman 1990)
    lstm:  (h_l, c_l) = LSTM(t_l, h_(l-1), c_(l-1))                          (Hochreiter 1997)
    logit = w^T dropout(h_L) + b                 (h_L of the top layer; hidden size 64)

`readout: mean` reads the mean of the top layer's states, (1/L) sum_l h_l, in place of h_L: every
field then reaches the head in one step rather than through the rest of the sequence.
`bidirectional: true` adds a backward pass from t_L to t_1 (torch's option); the head reads the
forward state after t_L beside the backward state after t_1 (or the mean of both directions').

`rnn` and `lstm` are this class: conf/model/lstm.yaml sets `cell: lstm`, the paper's learning
rate and `readout: mean`. Where the paper is silent, the choice is marked "CHOICE" here and listed in
docs/models/sequence.md.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import FieldEmbedding, numeric_tokens

CELLS: dict[str, type[nn.RNN] | type[nn.LSTM]] = {"rnn": nn.RNN, "lstm": nn.LSTM}
READOUTS = ("last", "mean")
#: How the recurrent weights W_hh start: torch's uniform(+-1/sqrt(h)), or orthogonal per gate.
RECURRENT_INITS = ("torch", "orthogonal")


def orthogonal_recurrence(recurrent: nn.RNN | nn.LSTM, hidden_size: int) -> None:
    """Each layer's and direction's W_hh set to a random orthogonal matrix, one per gate block
    (the LSTM's four): an orthogonal map keeps the state's norm, so the first fields' signal is
    neither squashed nor blown up on its way through the sequence (Saxe et al. 2014)."""
    with torch.no_grad():
        for name, weight in recurrent.named_parameters():
            if name.startswith("weight_hh"):
                for block in weight.split(hidden_size, dim=0):
                    nn.init.orthogonal_(block)


class Recurrent(CreditModel):
    """RNN or LSTM (`cell`) over the field tokens; a linear head on the last hidden state or on
    the mean of the states (`readout`).

    The constructor's defaults are `rnn`'s; `lstm` is this class with `cell: lstm`,
    `learning_rate: 3.0e-3` and `readout: mean` in its config.
    """

    family = "sequence"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        cell: Literal["rnn", "lstm"] = "rnn",
        d_embedding: int = 16,
        hidden_size: int = 64,
        n_layers: int = 1,
        dropout: float = 0.2,
        readout: Literal["last", "mean"] = "last",
        bidirectional: bool = False,
        recurrent_init: Literal["torch", "orthogonal"] = "torch",
        numeric_embedding: str | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        if cell not in CELLS:
            raise ValueError(f"cell={cell!r}, expected one of {list(CELLS)}")
        if d_embedding < 1:
            raise ValueError(f"d_embedding={d_embedding}, expected a positive integer")
        if hidden_size < 1:
            raise ValueError(f"hidden_size={hidden_size}, expected a positive integer")
        if n_layers < 1:
            raise ValueError(f"n_layers={n_layers}, expected a positive integer")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout}, expected 0 <= dropout < 1")
        if not isinstance(bidirectional, bool):
            raise ValueError(f"bidirectional={bidirectional!r}, expected true or false")
        if readout not in READOUTS:
            raise ValueError(f"readout={readout!r}, expected one of {list(READOUTS)}")
        if recurrent_init not in RECURRENT_INITS:
            raise ValueError(f"recurrent_init={recurrent_init!r}, expected one of {list(RECURRENT_INITS)}")
        spec = self.feature_spec
        if spec.n_categorical + spec.n_numeric == 0:
            raise ValueError("the feature spec has no fields, expected at least one to make a sequence")
        self.cell = cell
        self.readout = readout
        # The sequence: categorical fields in spec order, then numeric fields (x_num's columns).
        self.token_names = (*(f.name for f in spec.categorical), *spec.numeric_names)
        self.embed = FieldEmbedding(spec.cardinalities, d_embedding)
        # CHOICE: numeric tokens carry a bias per field (x_j w_j + b_j, as FT-Transformer's
        # tokenizer), so a value at the training mean (or a missing one) is not the zero token.
        self.numeric_embedding = numeric_embedding
        self.tokenize = numeric_tokens(
            numeric_embedding, spec.n_numeric, d_embedding, bins=spec.numeric_bins(numeric_embedding)
        )
        # CHOICE: torch's cells as they are (tanh for the RNN, zero initial state, one direction);
        # with n_layers > 1, `dropout` also acts between the layers (torch's own option).
        self.recurrent = CELLS[cell](
            d_embedding,
            hidden_size,
            num_layers=n_layers,
            batch_first=True,
            dropout=dropout if n_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.recurrent_init = recurrent_init
        if recurrent_init == "orthogonal":
            orthogonal_recurrence(self.recurrent, hidden_size)
        # CHOICE: dropout on the last state, then one linear layer to the logit.
        self.state_dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), 1)

    def tokens(self, batch: Batch) -> torch.Tensor:
        """The field tokens in sequence order (`token_names`): [B, L, d]."""
        return torch.cat([self.embed(batch["x_cat"]), self.tokenize(batch["x_num"])], dim=1)

    def last_state(self, tokens: torch.Tensor) -> torch.Tensor:
        """The top layer's state the head reads (`readout`): [B, L, d] -> [B, hidden_size], twice
        that wide when bidirectional (both directions side by side)."""
        outputs, state = self.recurrent(tokens)
        if self.readout == "mean":
            return outputs.mean(dim=1)
        hidden = state[0] if isinstance(state, tuple) else state  # the LSTM's state is (h, c)
        if self.recurrent.bidirectional:  # the forward pass after t_L, the backward one after t_1
            return torch.cat([hidden[-2], hidden[-1]], dim=-1)
        return hidden[-1]

    def forward(self, batch: Batch) -> torch.Tensor:
        last = self.last_state(self.tokens(batch))
        return self.head(self.state_dropout(last)).squeeze(-1)
