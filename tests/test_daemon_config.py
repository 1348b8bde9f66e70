"""The daemon's YAML config: schema, defaults, and errors that name the key and line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ser_edge.configfile import ConfigError, parse
from ser_edge.settings import Settings, load_settings
from tests.conftest import REPO, SAMPLES

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
        (
            "mqtt:\n  host: x\n  port: abc\n",
            "mqtt.port: expected an integer from 1 to 65535, got 'abc' (c.yaml line 3)",
        ),
        ("mqtt:\n  port: 70000\n", "mqtt.port: expected an integer from 1 to 65535, got 70000 (c.yaml line 2)"),
        ("mqtt:\n  prot: 5\n", "mqtt.prot: unknown key (known here: host, port, protocol"),
        ("mqtt:\n  protocol: 4\n", "mqtt.protocol: expected one of '5', '3.1.1', got 4 (c.yaml line 2)"),
        ("mqt: {}\n", "mqt: unknown key"),
        ("gate:\n  start_db: 3\n  stop_db: 5\n", "gate: stop_db (5) must not exceed start_db (3) (c.yaml line 2)"),
        ("source:\n  kind: replay\n", "source: files must list audio files or directories when kind is replay"),
        (
            "source:\n  kind: usb\n",
            "source.kind: expected one of 'microphone', 'replay', 'serial', got 'usb' (c.yaml line 2)",
        ),
        ("model:\n  threshold: high\n", "model.threshold: expected a number from 0 to 1, got 'high' (c.yaml line 2)"),
        ("mqtt:\n  discovery: maybe\n", "mqtt.discovery: expected true or false, got 'maybe'"),
        ("mqtt:\n  tls:\n    cert_file: a.crt\n", "mqtt.tls: cert_file and key_file go together (c.yaml line 3)"),
        ("mqtt:\n  base_topic: ser/#\n", "mqtt: base_topic 'ser/#' must be a topic without wildcards"),
        ("device:\n  id: kitchen pi\n", "device: id 'kitchen pi' may only contain letters"),
        ("mqtt:\n  port: 1\n  port: 2\n", "mqtt.port: given twice (c.yaml line 3)"),
        ("mqtt: [1, 2]\n", "mqtt: expected a mapping of settings (c.yaml line 1)"),
        ("source:\n  files: a.wav\n", "source.files: expected a list (c.yaml line 2)"),
        ("mqtt:\n  host: [\n", "not valid YAML"),
        ("model:\n  threshold: .nan\n", "model.threshold: expected a number from 0 to 1, got nan (c.yaml line 2)"),
        ("gate:\n  start_db: .inf\n", "gate.start_db: expected a number from 1 to 60, got inf"),
        ("mqtt:\n  keepalive_s: -.inf\n", "mqtt.keepalive_s: expected"),
        (
            "device:\n  id: 0123\n",
            'device.id: YAML reads 0123 as the number 83; write it in quotes: "0123" (c.yaml line 2)',
        ),
        ("device:\n  name: 1_000\n", "device.name: YAML reads 1_000 as the number 1000"),
        ("? [a, b]\n: 1\n", "the config: a key must be a name, not a list or mapping (c.yaml line 1)"),
        ("mqtt:\n  host: a\x07b\n", "not valid YAML: unacceptable character #x0007"),
        ("[" * 20000, "not a config: nested too deeply (c.yaml)"),
        ("mqtt:\n  host: broker..lan\n", "mqtt: host 'broker..lan' is not a host name or address"),
        ('mqtt:\n  host: ""\n', "mqtt: host '' is not a host name or address"),
        (f"mqtt:\n  host: {'a' * 64}.lan\n", "is not a host name or address"),
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
    assert (
        r.stderr.strip()
        == "ser-edge: error: mqtt.port: expected an integer from 1 to 65535, got 'abc' (config.yaml line 5)"
    )

    good = tmp_path / "good.yaml"  # the example, replaying clips: these machines have no microphone
    text = EXAMPLE.read_text().replace("/opt/ser-edge/models/current", str(SHIPPED))
    text = text.replace("kind: microphone ", "kind: replay     ").replace(
        "# files: [/srv/clips]", f"files: [{SAMPLES[0]}]"
    )
    good.write_text(text)
    r = _cli("check-config", str(good))
    assert r.returncode == 0 and "OK" in r.stdout and "kitchen-pi" in r.stdout, r.stderr
    good.write_text(text.replace(str(SAMPLES[0]), str(tmp_path / "gone.flac")))
    r = _cli("check-config", str(good))
    assert r.returncode == 78 and f"source.files[0]: {tmp_path / 'gone.flac'} does not exist" in r.stderr

    r = _cli("check-config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 78 and "cannot read the config" in r.stderr


def test_check_config_means_it_will_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `run` would refuse at start, check-config refuses first (issue 13)."""
    from ser_edge import preflight
    from ser_edge.audio import sources
    from ser_edge.settings import SourceSettings, SpoolSettings

    replay = SourceSettings(kind="replay", files=(SAMPLES[0],))
    ok = dataclasses.replace(Settings(), source=replay, spool=SpoolSettings(path=tmp_path / "new/dir/spool.sqlite"))
    assert preflight.preflight(ok, SHIPPED).bundle.name  # creatable below an existing folder
    (tmp_path / "a-file").write_text("")
    for spool, message in [
        (tmp_path, "is a directory"),
        (tmp_path / "a-file/spool.sqlite", "is not a writable folder"),
    ]:
        with pytest.raises(ConfigError, match=f"spool.path: .*{message}"):
            preflight.check_spool(spool)
    garbage = Path(shutil.copytree(SHIPPED, tmp_path / "bundle"))
    (garbage / "model.tflite").write_bytes(b"\0" * 64)
    manifest = json.loads((garbage / "manifest.json").read_text())
    manifest["model"]["sha256"] = hashlib.sha256(b"\0" * 64).hexdigest()  # a matching SHA-256 is not enough
    (garbage / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"model\.bundle: .*the interpreter cannot load model\.tflite"):
        preflight.check_bundle(garbage)
    manifest["labels"], manifest["model"]["sha256"] = (
        manifest["labels"][:7],
        hashlib.sha256((SHIPPED / "model.tflite").read_bytes()).hexdigest(),
    )
    shutil.copy(SHIPPED / "model.tflite", garbage / "model.tflite")
    (garbage / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="model has 8 outputs for 7 labels"):
        preflight.check_bundle(garbage)

    def no_pyaudio():  # the thinnest adapter to hardware these machines lack
        raise OSError("the microphone needs PyAudio: pip install 'ser-edge[mic]'")

    monkeypatch.setattr(sources, "load_pyaudio", no_pyaudio)
    with pytest.raises(ConfigError, match=r"source.kind: microphone, but the microphone needs PyAudio"):
        preflight.check_source(Settings())


def test_check_config_follows_references(tmp_path: Path) -> None:
    """A config is only valid if the bundle and secret files it names are usable."""
    corrupt = tmp_path / "bundle"
    shutil.copytree(SHIPPED, corrupt)
    (corrupt / "model.tflite").write_bytes(b"garbage")
    cfg = tmp_path / "c.yaml"
    replay = f"source:\n  kind: replay\n  files: [{SAMPLES[0]}]\n"  # these machines have no microphone
    cfg.write_text(f"model:\n  bundle: {corrupt}\n{replay}")
    r = _cli("check-config", str(cfg))
    assert r.returncode == 78 and "model.bundle:" in r.stderr and "SHA-256" in r.stderr
    r = _cli("check-config", str(cfg), "--bundle", str(SHIPPED))  # what a deployment is about to switch to
    assert r.returncode == 0, r.stderr
    cfg.write_text(f"model:\n  bundle: {SHIPPED}\n{replay}mqtt:\n  username: u\n  password_file: {tmp_path}/nope\n")
    r = _cli("check-config", str(cfg))
    assert r.returncode == 78 and f"mqtt.password_file: cannot read {tmp_path}/nope" in r.stderr


def test_run_refuses_an_invalid_config_with_78(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("gate:\n  hangover_ms: -5\n")
    r = _cli("run", "--config", str(cfg))
    assert (
        r.returncode == 78
        and "gate.hangover_ms: expected an integer from 0 to 5000, got -5 (c.yaml line 2)" in r.stderr
    )


def test_the_default_device_id_is_unique_per_machine(tmp_path: Path) -> None:
    import socket

    from ser_edge.settings import _default_device_id

    ids = []
    for n in ("1", "2"):
        (tmp_path / n).write_text(f"{n * 32}\n")
        ids.append(_default_device_id(tmp_path / n))
    host = socket.gethostname().lower()
    assert ids[0] != ids[1] and all(i.startswith(host[:10]) and len(i) == len(ids[0]) for i in ids)
    assert ids[0] == _default_device_id(tmp_path / "1")  # stable across restarts
    assert n * 32 not in ids[0] and _default_device_id(tmp_path / "missing") == _default_device_id(tmp_path / "nope")
