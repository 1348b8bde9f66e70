"""The daemon's YAML config: schema, defaults, and errors that name the key and line."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ser_edge.configfile import ConfigError, parse
from ser_edge.settings import Settings, load_settings
from tests.conftest import REPO

EXAMPLE = REPO / "deploy" / "config" / "config.example.yaml"
SHIPPED = REPO / "deploy" / "models" / "ser-tiny"


def test_empty_config_gives_defaults() -> None:
    s = parse("", Settings, "c.yaml")
    assert s == Settings() and s.mqtt.port == 1883 and s.mqtt.protocol == "5" and s.source.kind == "microphone"
    assert s.device.id and s.device.name == f"Emotion sensor {s.device.id}"


def test_example_config_is_valid_and_documents_every_key() -> None:
    s = load_settings(EXAMPLE)
    assert s.device.id == "kitchen-pi" and s.model.bundle == Path("/opt/ser-edge/models/current")
    text = EXAMPLE.read_text()
    for section in dataclasses.fields(Settings):
        for f in dataclasses.fields(getattr(Settings(), section.name)):
            assert f"{f.name}:" in text, f"{section.name}.{f.name} is not in the example config"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mqtt:\n  host: x\n  port: abc\n", "mqtt.port: expected an integer 1-65535, got 'abc' (c.yaml line 3)"),
        ("mqtt:\n  port: 70000\n", "mqtt.port: expected an integer 1-65535, got 70000 (c.yaml line 2)"),
        ("mqtt:\n  prot: 5\n", "mqtt.prot: unknown key (known here: host, port, protocol"),
        ("mqtt:\n  protocol: 4\n", "mqtt.protocol: expected one of '5', '3.1.1', got 4 (c.yaml line 2)"),
        ("mqt: {}\n", "mqt: unknown key"),
        ("gate:\n  start_db: 3\n  stop_db: 5\n", "gate: stop_db (5) must not exceed start_db (3) (c.yaml line 2)"),
        ("source:\n  kind: replay\n", "source: files must list audio files or directories when kind is replay"),
        (
            "source:\n  kind: usb\n",
            "source.kind: expected one of 'microphone', 'replay', 'serial', got 'usb' (c.yaml line 2)",
        ),
        ("model:\n  threshold: high\n", "model.threshold: expected a number 0-1, got 'high' (c.yaml line 2)"),
        ("mqtt:\n  discovery: maybe\n", "mqtt.discovery: expected true or false, got 'maybe'"),
        ("mqtt:\n  tls:\n    cert_file: a.crt\n", "mqtt.tls: cert_file and key_file go together (c.yaml line 3)"),
        ("mqtt:\n  base_topic: ser/#\n", "mqtt: base_topic 'ser/#' must be a topic without wildcards"),
        ("device:\n  id: kitchen pi\n", "device: id 'kitchen pi' may only contain letters"),
        ("mqtt:\n  port: 1\n  port: 2\n", "mqtt.port: given twice (c.yaml line 3)"),
        ("mqtt: [1, 2]\n", "mqtt: expected a mapping of settings (c.yaml line 1)"),
        ("source:\n  files: a.wav\n", "source.files: expected a list (c.yaml line 2)"),
        ("mqtt:\n  host: [\n", "not valid YAML"),
    ],
)
def test_bad_configs_name_key_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(text, Settings, "c.yaml")
    assert message in str(e.value)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ser_edge", *args], capture_output=True, text=True, timeout=120)


def test_check_config_exit_status(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("device:\n  id: pi\nmqtt:\n  host: broker\n  port: abc\n")
    r = _cli("check-config", str(bad))
    assert r.returncode == 78 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "ser-edge: error: mqtt.port: expected an integer 1-65535, got 'abc' (config.yaml line 5)"

    good = tmp_path / "good.yaml"
    good.write_text(EXAMPLE.read_text().replace("/opt/ser-edge/models/current", str(SHIPPED)))
    r = _cli("check-config", str(good))
    assert r.returncode == 0 and "OK" in r.stdout and "kitchen-pi" in r.stdout, r.stderr

    r = _cli("check-config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 78 and "cannot read the config" in r.stderr


def test_check_config_follows_references(tmp_path: Path) -> None:
    """A config is only valid if the bundle and secret files it names are usable."""
    corrupt = tmp_path / "bundle"
    shutil.copytree(SHIPPED, corrupt)
    (corrupt / "model.tflite").write_bytes(b"garbage")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model:\n  bundle: {corrupt}\n")
    r = _cli("check-config", str(cfg))
    assert r.returncode == 78 and "model.bundle:" in r.stderr and "SHA-256" in r.stderr
    r = _cli("check-config", str(cfg), "--bundle", str(SHIPPED))  # what a deployment is about to switch to
    assert r.returncode == 0, r.stderr
    cfg.write_text(f"model:\n  bundle: {SHIPPED}\nmqtt:\n  username: u\n  password_file: {tmp_path}/nope\n")
    r = _cli("check-config", str(cfg))
    assert r.returncode == 78 and f"mqtt.password_file: cannot read {tmp_path}/nope" in r.stderr


def test_run_refuses_an_invalid_config_with_78(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("gate:\n  hangover_ms: -5\n")
    r = _cli("run", "--config", str(cfg))
    assert r.returncode == 78 and "gate.hangover_ms: expected an integer 0-5000, got -5 (c.yaml line 2)" in r.stderr
