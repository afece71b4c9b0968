"""Layers shared by the models: field embeddings and tokens, numeric encodings, MLPs, interactions."""

from zoo.nn.attention import AttentionPooling, FieldAttention
from zoo.nn.embeddings import EMBEDDING_STD, FieldEmbedding, OneHotLinear
from zoo.nn.interactions import SENET, BilinearInteraction, CrossCompression, FMInteraction
from zoo.nn.mlp import MLP, FeatureWiseLinear
from zoo.nn.norm import NORMALIZATIONS, OneRowBatchNorm1d, make_norm
from zoo.nn.numeric import (
    NumericEmbedding,
    NumericTokenizer,
    bins_from_edges,
    embed_flat,
    flat_width,
    make_numeric_embedding,
    numeric_tokens,
)
from zoo.nn.tokens import FieldTokens, FirstOrder
from zoo.nn.utils import select

__all__ = [
    "MLP",
    "NORMALIZATIONS",
    "OneRowBatchNorm1d",
    "make_norm",
    "SENET",
    "AttentionPooling",
    "BilinearInteraction",
    "CrossCompression",
    "EMBEDDING_STD",
    "FMInteraction",
    "FeatureWiseLinear",
    "FieldAttention",
    "FieldEmbedding",
    "FieldTokens",
    "FirstOrder",
    "NumericEmbedding",
    "NumericTokenizer",
    "OneHotLinear",
    "bins_from_edges",
    "embed_flat",
    "flat_width",
    "make_numeric_embedding",
    "numeric_tokens",
    "select",
]
