"""Data path shared by every model: load, validate, preprocess, split, serve batches."""

from zoo.data.spec import CategoricalField, CrossField, FeatureSpec

__all__ = ["CategoricalField", "CrossField", "FeatureSpec"]
