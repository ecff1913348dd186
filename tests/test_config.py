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
    sections = ("[mqtt]", "[mqtt.tls]", "[influx]", "[batch]", "[profiles]", "[spool]")
    for section in (*sections, "[http]", "[monitoring]", "[monitoring.expected_interval_s]"):
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


def test_monitoring_intervals_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "g.toml"
    file.write_text(
        '[http]\nlisten = "::"\n[monitoring]\ninstance = "edge-01"\n'
        '[monitoring.expected_interval_s]\n"mh-water-flow-json" = 300\n',
        encoding="utf-8",
    )
    settings = load_settings(file)
    assert settings.http.listen == "::"
    assert settings.monitoring.instance == "edge-01"
    assert settings.monitoring.expected_interval_s == {"mh-water-flow-json": 300.0}
    monkeypatch.setenv("GATEWAY_MONITORING__EXPECTED_INTERVAL_S", '{"mh-streetlight-json": 60}')
    # A table from the environment is merged into the file's, key by key (as pydantic-settings did).
    assert load_settings(file).monitoring.expected_interval_s == {
        "mh-water-flow-json": 300.0,
        "mh-streetlight-json": 60.0,
    }


def test_liveness_intervals_must_be_positive(tmp_path: Path) -> None:
    file = tmp_path / "g.toml"
    file.write_text('[monitoring.expected_interval_s]\n"a" = 0\n"b" = 60\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"monitoring.expected_interval_s: .*profiles: a\)"):
        load_settings(file)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_secrets_come_from_files_without_the_trailing_newline(tmp_path: Path) -> None:
    mqtt_secret = _write(tmp_path / "mqtt-password", "Mq7 pass word\n")
    influx_secret = _write(tmp_path / "influx-password", "Ix9-pass\r\n")
    token = _write(tmp_path / "token", "Tk3-token")  # no newline at all
    file = _write(
        tmp_path / "g.toml",
        f'[mqtt]\nusername = "gw"\npassword_file = "{mqtt_secret}"\n'
        f'[influx]\nusername = "gw"\npassword_file = "{influx_secret}"\n'
        f'token_file = "{token}"\n',
    )
    settings = load_settings(file)
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "Mq7 pass word"
    assert settings.influx.password is not None
    assert settings.influx.password.get_secret_value() == "Ix9-pass"
    assert settings.influx.token is not None
    assert settings.influx.token.get_secret_value() == "Tk3-token"
    assert settings.mqtt.password_file == mqtt_secret
    for secret in ("Mq7 pass word", "Ix9-pass", "Tk3-token"):
        assert secret not in repr(settings)
        assert secret not in str(settings.model_dump())


def test_secret_files_can_be_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _write(tmp_path / "token", "from-a-file\n")
    monkeypatch.setenv("GATEWAY_INFLUX__TOKEN_FILE", str(token))
    monkeypatch.setenv("GATEWAY_INFLUX__API", "v2")
    monkeypatch.setenv("GATEWAY_INFLUX__ORG", "my-hao")
    monkeypatch.setenv("GATEWAY_INFLUX__BUCKET", "telemetry")
    settings = load_settings(None)
    assert settings.influx.token is not None
    assert settings.influx.token.get_secret_value() == "from-a-file"


def test_a_secret_and_its_file_together_are_an_error_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = _write(tmp_path / "credential", "in-the-file\n")
    file = _write(
        tmp_path / "g.toml",
        f'[mqtt]\npassword = "in-the-toml"\npassword_file = "{secret_file}"\n'
        f'[influx]\ntoken_file = "{secret_file}"\n',
    )
    monkeypatch.setenv("GATEWAY_INFLUX__TOKEN", "in-the-environment")
    with pytest.raises(ConfigError) as raised:
        load_settings(file)
    message = str(raised.value)
    assert "mqtt.password and mqtt.password_file are both set" in message
    assert "influx.token and influx.token_file are both set" in message
    for secret in ("in-the-file", "in-the-toml", "in-the-environment"):
        assert secret not in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file or directory"),
        (b"\n", "is empty"),
        (b"p\xe9rsimmon-77", "not UTF-8 text"),
    ],
    ids=["missing", "empty", "not-utf8"],
)
def test_an_unreadable_secret_file_is_a_config_error_naming_it(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    secret_file = tmp_path / "credential"
    if content is not None:
        secret_file.write_bytes(content)
    file = _write(tmp_path / "g.toml", f'[influx]\npassword_file = "{secret_file}"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(file)
    message = str(raised.value)
    assert f"{file}: influx: " in message
    assert "influx.password_file: " in message
    assert str(secret_file) in message
    assert reason in message
    assert "rsimmon" not in message  # the codec's message would quote a byte of the secret


def test_the_example_config_documents_secret_files_but_holds_no_secret() -> None:
    lines = (ROOT / "gateway.example.toml").read_text(encoding="utf-8").splitlines()
    for key in ("password_file", "token_file"):
        assert any(line.lstrip().startswith(f"# {key} = ") for line in lines), key
    for line in lines:
        setting = line.split("#", 1)[0]
        assert "password" not in setting
        assert "token" not in setting


def test_tls_options_need_tls_enabled(tmp_path: Path) -> None:
    file = _write(tmp_path / "g.toml", '[mqtt.tls]\nca_file = "/etc/ca.pem"\n')
    with pytest.raises(ConfigError, match=r"mqtt: .*tls.ca_file set but tls.enabled = false"):
        load_settings(file)
    file = _write(tmp_path / "g.toml", '[mqtt.tls]\nenabled = true\nkey_file = "/etc/k.pem"\n')
    with pytest.raises(ConfigError, match=r"tls.key_file needs tls.cert_file"):
        load_settings(file)


def test_an_ipv6_broker_may_be_written_with_brackets(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "g.toml", '[mqtt]\nhost = "[::1]"\n[influx]\nurl = "http://[::1]:8086"\n'
    )
    settings = load_settings(file)
    assert settings.mqtt.host == "::1"
    assert settings.influx.url == "http://[::1]:8086"
