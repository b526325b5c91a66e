"""Runners: the only code that imports torch, transformers, peft, trl and datasets (inside functions)."""
