"""Configuration: file, environment overrides, clear errors, secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_is_valid_and_documents_every_section() -> None:
    settings = load_settings(ROOT / "gateway.example.toml")
    assert settings.batch.max_points == 5000
    assert settings.batch.max_age_s == 1.0
    text = (ROOT / "gateway.example.toml").read_text(encoding="utf-8")
    for section in ("[mqtt]", "[mqtt.tls]", "[influx]", "[batch]", "[profiles]", "[spool]"):
        assert section in text


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "g.toml"
    file.write_text('[mqtt]\nport = 1883\nhost = "broker"\n', encoding="utf-8")
    monkeypatch.setenv("GATEWAY_MQTT__PORT", "1884")
    monkeypatch.setenv("GATEWAY_INFLUX__PASSWORD", "s3cret-value")
    settings = load_settings(file)
    assert settings.mqtt.port == 1884
    assert settings.mqtt.host == "broker"
    assert settings.influx.password is not None
    assert settings.influx.password.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)


def test_errors_name_file_field_and_valid_values(tmp_path: Path) -> None:
    file = tmp_path / "g.toml"
    file.write_text('[mqtt]\nqos = 2\nprot = 1\n[influx]\napi = "v2"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(file)
    message = str(raised.value)
    assert f"{file}: mqtt.qos: Input should be 0 or 1" in message
    assert f"{file}: mqtt.prot: unknown key" in message
    assert "api = 'v2' needs both 'org' and 'bucket'" in message


def test_password_is_not_echoed_in_errors(tmp_path: Path) -> None:
    file = tmp_path / "g.toml"
    file.write_text("[influx]\npassword = 12345\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(file)
    assert "12345" not in str(raised.value)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[mqtt\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)
