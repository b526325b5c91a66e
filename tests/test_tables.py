"""The catalogue and the rules table are checked when they load."""

import pytest
from pydantic import ValidationError

from adaptkit.methods.catalogue import METHOD_IDS, methods, sources
from adaptkit.advisor.rules import Rule, describe, matches, rules


def test_catalogue_has_the_ten_methods_with_evidence():
    catalogue = methods()
    assert tuple(sorted(catalogue)) == tuple(sorted(METHOD_IDS))
    for method in catalogue.values():
        assert method.name and method.changes and method.touches and method.cost_tier and method.typical_use and method.data_needs
        assert method.evidence and all(e.sources for e in method.evidence)


def test_rules_load_and_cite_known_sources():
    table = rules()
    assert len({r.id for r in table}) == len(table) >= 30
    for rule in table:
        assert rule.reason and all(s in sources() for s in rule.sources)


GOOD = dict(id="X", kind="score", title="t", reason="r", score={"rag": 1})


@pytest.mark.parametrize("change, words", [
    (dict(score={"rag": 11}), "outside"),
    (dict(score={"ragg": 1}), "ragg"),
    (dict(when={"labelled_examples": 3}), "unknown fact"),
    (dict(when={"goal": "knowlege"}), "can only be one of"),
    (dict(when={"budget_usd": {"under": 3}}), "unknown operators"),
    (dict(kind="gate", score={}), "must rule something out"),
    (dict(sources=["NOPE"]), "unknown sources"),
    (dict(colour=1), "colour"),
])
def test_a_broken_rule_fails_to_load(change, words):
    with pytest.raises(ValidationError, match=words):
        Rule(**{**GOOD, **change})


@pytest.mark.parametrize("cond, facts, expected", [
    ({}, {}, True),
    ({"goal": "knowledge"}, {"goal": "knowledge"}, True),
    ({"goal": ["knowledge", "actions"]}, {"goal": "behavior"}, False),
    ({"labeled_examples": {"gt": 50, "le": 500}}, {"labeled_examples": 500}, True),
    ({"labeled_examples": {"gt": 50, "le": 500}}, {"labeled_examples": 501}, False),
    ({"model_params_b": {"le": 1}}, {"model_params_b": None}, False),
    ({"model_params_b": None}, {"model_params_b": None}, True),
    ({"is_base_model": {"ne": True}}, {"is_base_model": None}, True),
    ({"any": [{"a": 1}, {"b": 2}]}, {"a": 0, "b": 2}, True),
    ({"any": [{"a": 1}, {"b": 2}]}, {"a": 0, "b": 0}, False),
])
def test_conditions(cond, facts, expected):
    assert matches(cond, facts) is expected


def test_conditions_read_like_text():
    assert describe({"goal": "behavior", "labeled_examples": {"gt": 50}}) == "goal = behavior, labeled_examples > 50"
    assert describe({}) == "always"
