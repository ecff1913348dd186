"""docs/configuration.md is generated from the settings model and must stay in sync with it."""

from __future__ import annotations

from pathlib import Path

from gateway.config import GatewaySettings
from gateway.operations.config_reference import render_reference, section_model

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"


def test_the_committed_reference_matches_the_settings_model() -> None:
    assert PAGE.read_text(encoding="utf-8") == render_reference(), (
        "docs/configuration.md is stale: run `gateway config reference --out "
        "docs/configuration.md` and commit the result"
    )


def test_every_key_of_every_section_is_in_the_reference() -> None:
    page = render_reference()
    for section, info in GatewaySettings.model_fields.items():
        model = section_model(info)
        assert model is not None, f"[{section}] is not a table: the reference would miss it"
        for key, field in model.model_fields.items():
            if section_model(field) is None:
                assert f"| `{key}` |" in page, f"{section}.{key}"
    assert "`GATEWAY_MQTT__TLS__CA_FILE`" in page
    assert "| `port` | int (≥ 1, ≤ 65535) | `1883` |" in page
    assert "| `password` | secret (optional) | none |" in page
