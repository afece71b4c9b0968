"""Layers shared by the models: field embeddings, numeric embeddings, MLPs, interactions, attention."""

from zoo.nn.attention import AttentionPooling, FieldAttention
from zoo.nn.embeddings import FieldEmbedding, OneHotLinear
from zoo.nn.interactions import SENET, BilinearInteraction, FMInteraction
from zoo.nn.mlp import MLP, FeatureWiseLinear
from zoo.nn.numeric import NumericEmbedding, NumericTokenizer, bins_from_edges
from zoo.nn.utils import select

__all__ = [
    "MLP",
    "SENET",
    "AttentionPooling",
    "BilinearInteraction",
    "FMInteraction",
    "FeatureWiseLinear",
    "FieldAttention",
    "FieldEmbedding",
    "NumericEmbedding",
    "NumericTokenizer",
    "OneHotLinear",
    "bins_from_edges",
    "select",
]
