"""Built-in model plugins; each is registered through the `credit_zoo.models` entry-point group."""
