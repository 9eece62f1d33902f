"""The Test tab's sample row: plausible values from the training profile, and a sensible one for
every column the profile has nothing on."""

from endpoints.serving import sample_row


def test_each_column_gets_a_value_of_its_kind():
    signature = {
        "columns": [
            {"name": "Customer ID", "type": "identifier", "dtype": "str"},
            {"name": "Comment", "type": "text", "dtype": "str"},
            {"name": "Plan", "type": "categorical", "dtype": "str", "categories": ["basic", "pro"]},
            {"name": "Monthly $", "type": "numeric", "dtype": "float64"},
            {"name": "Signed up", "type": "datetime", "dtype": "datetime64[ns]"},
            {"name": "Active?", "type": "boolean", "dtype": "bool"},
            {"name": "Seats", "type": "integer", "dtype": "float64"},
        ]
    }
    reference = {"columns": {"Seats": {"kind": "numeric", "edges": [1.0, 2.0, 3.4, 8.0, 20.0]}}}
    row = sample_row(signature, reference)
    assert row == {
        "Customer ID": "id-1",
        "Comment": "text",
        "Plan": "basic",
        "Monthly $": 0,
        "Signed up": "2024-01-01T00:00:00",
        "Active?": False,
        "Seats": 3,
    }
