"""Read YAML safely: the fast C loader when PyYAML has it, no duplicate keys, and no alias bombs.

YAML aliases share one node, so a few hundred bytes can stand for billions of values once anything walks the
result (validation, an error message, JSON). A document whose aliases expand past MAX_NODES is refused before
it is built, and a key given twice in one mapping is an error instead of "the last one wins".
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

MAX_NODES = 20_000  # values in a document with every alias expanded; a recipe or answers file has a few hundred

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _expanded_size(root) -> int:
    """Nodes in the document with aliases expanded (stops counting past MAX_NODES); refuses recursive aliases."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        if finished:
            sizes[key] = min(MAX_NODES + 1, 1 + sum(sizes[id(child)] for child in children))
            open_nodes.discard(key)
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                raise ConstructorError(None, None, "a YAML alias refers to a node that contains it (recursive)", child.start_mark)
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


class Loader(_Base):
    """PyYAML's safe loader, refusing alias bombs and duplicate keys."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_NODES:
            raise ConstructorError(None, None, f"the document expands to more than {MAX_NODES:,} values (YAML aliases): refused",
                                   node.start_mark)
        return self.construct_document(node)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if key_node.value in seen:
                        raise ConstructorError(None, None, f"duplicate key `{key_node.value[:60]}`: give each key once",
                                               key_node.start_mark)
                    seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path):
    """Parse one YAML file from disk."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=Loader)


def loads_yaml(text: str):
    """Parse YAML text."""
    return yaml.load(text, Loader=Loader)


def problem(exc: Exception) -> str:
    """A YAML error in one line a user can act on: where it is (line and column) and what is wrong there."""
    mark, said = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is not None and said:
        return f"line {mark.line + 1}, column {mark.column + 1}: {said}"
    first = str(exc).strip().splitlines()
    return first[0] if first else exc.__class__.__name__
