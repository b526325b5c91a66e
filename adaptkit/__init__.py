"""adaptkit: choose how to adapt a foundation model, check it fits, and run the recipe."""

__version__ = "0.1.0"
