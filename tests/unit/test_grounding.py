"""apps.worker.tasks.grounding: extraction held to the spans of its text."""

from __future__ import annotations

from typing import Any

from apps.worker.tasks.grounding import candidates, constrain, unsupported

INVOICE = "ACME Ltd.\nInvoice number: INV-7\nTotal due: EUR 1,234.50\nPhone: +34 600 123 456"


def test_a_fields_candidates_come_from_the_line_that_names_it_without_the_label() -> None:
    assert candidates(INVOICE, "invoice_number") == ["INV-7"]
    assert "1,234.50" in candidates(INVOICE, "total")
    assert not any("Total" in span for span in candidates(INVOICE, "total"))


def test_a_field_no_line_names_may_take_any_span() -> None:
    spans = candidates(INVOICE, "customer")
    assert "ACME Ltd" in spans
    assert "+34 600 123 456" in spans


def test_only_plain_string_properties_are_constrained() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "total": {"type": "string"},
            "currency": {"type": "string", "enum": ["EUR", "USD"]},
            "count": {"type": "integer"},
        },
    }
    constrained = constrain(schema, INVOICE)["properties"]
    assert "1,234.50" in constrained["total"]["enum"]
    assert constrained["currency"]["enum"] == ["EUR", "USD"]
    assert constrained["count"] == {"type": "integer"}
    assert schema["properties"]["total"] == {"type": "string"}  # the caller's is untouched


def test_values_the_text_does_not_hold_are_listed_as_unsupported() -> None:
    data = {
        "invoice": "inv-7",  # case does not matter
        "total": 1234.5,  # nor the thousands separator
        "phone": "1234567890",  # invented
        "lines": [{"sku": "X-99"}],  # invented, nested
        "paid": False,  # not a quote: never flagged
    }
    assert unsupported(data, INVOICE) == ["/phone", "/lines/0/sku"]
