"""Recipes: the YAML schema, loading with overrides, the built-in registry, and recipes emitted from advice."""
