"""An example third-party credit-zoo plugin; its model is registered as `nam` in pyproject.toml."""

from credit_zoo_example.nam import NeuralAdditiveModel

__all__ = ["NeuralAdditiveModel"]
