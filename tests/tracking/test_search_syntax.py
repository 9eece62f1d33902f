"""MLflow's filter and order-by syntax, parsed (no database)."""

import pytest

from tracking.errors import MlflowError
from tracking.search import ATTRIBUTE, METRIC, PARAM, TAG, Clause, Order, like_regex, parse_filter, parse_order_by


@pytest.mark.parametrize(
    ("text", "clauses"),
    [
        ("", []),
        ("   ", []),
        ("metrics.acc > 0.9", [Clause(METRIC, "acc", ">", 0.9)]),
        ("metric.`val loss` <= -1e-3", [Clause(METRIC, "val loss", "<=", -0.001)]),
        ("params.\"learning rate\" = '0.1'", [Clause(PARAM, "learning rate", "=", "0.1")]),
        ("tags.mlflow.source.name != 'train.py'", [Clause(TAG, "mlflow.source.name", "!=", "train.py")]),
        ("tags.team LIKE '%ops & data%'", [Clause(TAG, "team", "LIKE", "%ops & data%")]),
        ("tags.team ilike 'ÉQUIPE_%'", [Clause(TAG, "team", "ILIKE", "ÉQUIPE_%")]),
        ("params.m IN ('a', \"b c\")", [Clause(PARAM, "m", "IN", ("a", "b c"))]),
        ("params.m not in ('it''s')", [Clause(PARAM, "m", "NOT IN", ("it's",))]),
        (
            "attributes.status = 'FINISHED' AND run_name = 'x'",
            [
                Clause(ATTRIBUTE, "status", "=", "FINISHED"),
                Clause(ATTRIBUTE, "run_name", "=", "x"),
            ],
        ),
        ("attribute.start_time >= 1700000000000", [Clause(ATTRIBUTE, "start_time", ">=", 1.7e12)]),
        ("params.learning-rate <> '1'", [Clause(PARAM, "learning-rate", "!=", "1")]),
    ],
)
def test_filters_parse(text, clauses):
    assert parse_filter(text) == clauses


@pytest.mark.parametrize(
    "text",
    [
        "metrics.acc >",
        "metrics.acc = 'high'",
        "metrics.acc LIKE '%1'",
        "params.p > 1",
        "params.p IN 'a'",
        "tags.t = ('a')",
        "foo.bar = 1",
        "attributes.nothing = 'x'",
        "metrics.a = 1 OR metrics.b = 2",
        "metrics.a = 1 metrics.b = 2",
        "metrics. = 1",
        "params.p = 'unterminated",
        "params.p = 'a' ; DROP TABLE x",
        "x" * 10_001,
    ],
)
def test_bad_filters_are_invalid_parameter_values(text):
    with pytest.raises(MlflowError) as raised:
        parse_filter(text)
    assert raised.value.code == "INVALID_PARAMETER_VALUE" and raised.value.status == 400


def test_order_by_clauses():
    assert parse_order_by(["metrics.`val loss` DESC", "params.seed", "start_time asc", "tags.t"]) == [
        Order(METRIC, "val loss", False),
        Order(PARAM, "seed", True),
        Order(ATTRIBUTE, "start_time", True),
        Order(TAG, "t", True),
    ]
    for bad in [["metrics.x SIDEWAYS"], ["nothing"], [""], [1], ["metrics.a DESC extra"]]:
        with pytest.raises(MlflowError):
            parse_order_by(bad)


def test_like_patterns_become_anchored_regular_expressions():
    assert like_regex("%a.b_") == r"^.*a\.b.$"
    assert like_regex("100%") == "^100.*$"
