"""The fleet playbook, for real: ansible-playbook against three local hosts, each with its
own root prefix, running real daemons (supervised backend: systemd is not PID 1 here)
that talk to a real Mosquitto.

Scenario: deploy version 1, then 2 (all hosts switch), then a broken 3 (the canary fails
its health gate, is rolled back, and the rollout stops), then 2 again (nothing changes),
then model-only rollouts (good, then broken) and check mode.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ser_edge.tools.localbroker import LocalBroker
from tests.conftest import REPO
from tests.daemon_harness import SHIPPED, Subscriber

SHIPPED_MANIFEST = json.loads((SHIPPED / "manifest.json").read_text())
SHIPPED_NAME = SHIPPED_MANIFEST["name"]

ANSIBLE = REPO / "ansible"
BIN = Path(sys.executable).parent
HOSTS = ("h1", "h2", "h3")
USER = "ser-edge-test"


def _run(*args: str, check: bool = False, cwd: Path = ANSIBLE) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "PATH": f"{BIN}:{os.environ['PATH']}"}  # fmt: skip
    r = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout[-6000:]}\n{r.stderr[-3000:]}")
    return r


def test_syntax_check() -> None:
    _run(str(BIN / "ansible-playbook"), "--syntax-check", "-i", "inventory/example", "deploy.yml", check=True)


def test_ansible_lint_production_profile() -> None:
    r = _run(str(BIN / "ansible-lint"), "--profile", "production", "--offline", "deploy.yml", "broker-acl.yml", "roles")
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]


class Fleet:
    def __init__(self, base: Path, broker: LocalBroker, wheelhouse: Path) -> None:
        self.base, self.broker, self.wheelhouse = base, broker, wheelhouse
        self.inventory = base / "hosts.yml"
        samples = sorted((REPO / "deploy" / "samples").glob("*.flac"))
        source = {"kind": "replay", "files": [str(p) for p in samples[3:6]], "realtime": True, "loop": True}
        hosts = {h: {"ser_edge_root": str(base / h), "ser_edge_device_id": h} for h in HOSTS}
        self.inventory.write_text(json.dumps({"ser_edge": {"hosts": hosts, "vars": {
            "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_become": False, "ser_edge_service_backend": "supervised", "ser_edge_user": USER,
            "ser_edge_mqtt_host": "127.0.0.1", "ser_edge_mqtt_port": broker.port,
            "ser_edge_mqtt_username": "pi", "ser_edge_mqtt_password": "s3cret",
            "ser_edge_source": source, "ser_edge_wheelhouse": str(wheelhouse), "ser_edge_health_retries": 60,
            "ser_edge_serial": [1, "100%"],  # the canary, then h2 and h3 side by side
        }}}))  # fmt: skip

    def deploy(self, release: str, bundle: Path, *extra: str) -> subprocess.CompletedProcess:
        return _run(str(BIN / "ansible-playbook"), "-i", str(self.inventory), "deploy.yml",
                    "-e", f"ser_edge_release={release}", "-e", f"ser_edge_bundle={bundle}", *extra)  # fmt: skip

    def current(self, host: str) -> str:
        return os.readlink(self.base / host / "opt/ser-edge/current").rsplit("/", 1)[-1]

    def model(self, host: str) -> str:
        return os.readlink(self.base / host / "opt/ser-edge/model").rsplit("/", 1)[-1]

    def state(self, host: str) -> dict:
        r = _run("/usr/bin/python3", str(self.base / host / "opt/ser-edge/bin/ser-edge-supervise"),
                 f"--root={self.base / host}", "status")  # fmt: skip
        return json.loads(r.stdout) | {"rc": r.returncode}

    def stop_all(self) -> None:
        for h in HOSTS:
            supervise = self.base / h / "opt/ser-edge/bin/ser-edge-supervise"
            if supervise.exists():
                _run("/usr/bin/python3", str(supervise), f"--root={self.base / h}", "stop")


def _recap(output: str) -> dict[str, dict[str, int]]:
    return {m[1]: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m[2])}
            for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M)}  # fmt: skip


def _bundle(tmp: Path, version: str, broken: bool = False) -> Path:
    out = tmp / f"bundle-{version}"
    shutil.copytree(SHIPPED, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["version"] = version
    if broken:  # a valid file the device accepts, but every label is wrong: only the health gate can tell
        manifest["labels"] = manifest["labels"][::-1]
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def fleet():
    if os.geteuid() != 0:
        pytest.fail("the fleet test creates a service user and runs the role as root (CI runs as root)")
    # Under /var/tmp: the service user must be able to reach the release through the path.
    base = Path(tempfile.mkdtemp(prefix="ser-edge-fleet-", dir="/var/tmp"))
    base.chmod(0o755)
    wheelhouse = base / "wheelhouse"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheelhouse),
                    str(REPO / "edge")], check=True, timeout=900)  # fmt: skip
    broker = LocalBroker(base / "broker").start()
    f = Fleet(base, broker, wheelhouse)
    try:
        yield f
    finally:
        f.stop_all()
        broker.stop()
        subprocess.run(["userdel", USER], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_rollout_rollback_and_idempotence(fleet: Fleet, tmp_path: Path) -> None:
    v1, v2, v3 = SHIPPED, _bundle(tmp_path, "8.0.0"), _bundle(tmp_path, "9.0.0", broken=True)
    sub = Subscriber(fleet.broker.port, "ser/+/availability")

    # 1. Version 1 everywhere, in the inventory's two waves (a play's serial cannot see inventory vars by itself).
    r = fleet.deploy("1", v1)
    assert r.returncode == 0, r.stdout[-6000:]
    assert r.stdout.count("PLAY [Deploy ser-edge in canary waves]") == 2, r.stdout[-6000:]
    for h in HOSTS:
        assert fleet.current(h) == "1" and fleet.model(h).startswith(f"{SHIPPED_NAME}-{SHIPPED_MANIFEST['version']}-")
        state = fleet.state(h)
        assert state["rc"] == 0 and state["ready"] and state["active"], state
        secret = fleet.base / h / "etc/ser-edge/mqtt-password"
        assert secret.stat().st_mode & 0o777 == 0o600 and secret.owner() == USER and secret.read_text() == "s3cret"
        assert (fleet.base / h / "etc/ser-edge/config.yaml").stat().st_mode & 0o777 == 0o640
    online = {f"ser/{h}/availability" for h in HOSTS}
    assert sub.wait(lambda s: {t for t, p, _ in s.messages if p == "online"} == online)
    unit = fleet.base / "h1/etc/systemd/system/ser-edge.service"  # the role's copy, with this host's paths
    assert f"ExecStart={fleet.base}/h1/opt/ser-edge/current/bin/ser-edge run --config" in unit.read_text()
    verify = _run("systemd-analyze", "verify", str(unit))
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr

    # 2. Version 2: every host switches, in waves.
    pids = {h: fleet.state(h)["main_pid"] for h in HOSTS}
    r = fleet.deploy("2", v2)
    assert r.returncode == 0, r.stdout[-6000:]
    for h in HOSTS:
        assert fleet.current(h) == "2" and "-8.0.0-" in fleet.model(h)
        state = fleet.state(h)
        assert state["ready"] and state["main_pid"] != pids[h], state  # restarted on the new release

    # 3. A broken version 3: the canary fails its health gate, is rolled back, the wave stops.
    pids = {h: fleet.state(h)["main_pid"] for h in HOSTS}
    r = fleet.deploy("3", v3)
    assert r.returncode != 0
    assert "failed the health gate on h1; rolled back to 2" in r.stdout, r.stdout[-6000:]
    recap = _recap(r.stdout)
    assert recap["h1"]["failed"] == 1 and "h2" not in recap and "h3" not in recap, recap
    for h in HOSTS:
        assert fleet.current(h) == "2" and "-8.0.0-" in fleet.model(h)
        assert fleet.state(h)["ready"]
    assert fleet.state("h2")["main_pid"] == pids["h2"] and fleet.state("h3")["main_pid"] == pids["h3"]  # untouched
    check = _run(str(fleet.base / "h1/opt/ser-edge/current/bin/ser-edge"), "selftest",
                 f"--config={fleet.base / 'h1/etc/ser-edge/config.yaml'}", "--availability")  # fmt: skip
    assert check.returncode == 0, check.stdout  # the daemon answers on the broker

    # 4. Version 2 again: nothing to change anywhere.
    r = fleet.deploy("2", v2)
    assert r.returncode == 0, r.stdout[-6000:]
    recap = _recap(r.stdout)
    assert set(recap) >= set(HOSTS) and all(v["changed"] == 0 for v in recap.values()), recap

    # 5. Check mode with diff on a new version changes nothing.
    before = {h: (fleet.current(h), fleet.model(h), fleet.state(h)["main_pid"]) for h in HOSTS}
    r = fleet.deploy("4", v1, "--check", "--diff")
    assert r.returncode == 0, r.stdout[-6000:]
    assert {h: (fleet.current(h), fleet.model(h), fleet.state(h)["main_pid"]) for h in HOSTS} == before
    assert not (fleet.base / "h1/opt/ser-edge/releases/4").exists()
    sub.close()


def test_model_only_rollouts(fleet: Fleet, tmp_path: Path) -> None:
    """A new bundle for the running code: installed, validated, SIGHUP-reloaded (the
    daemon keeps its process), health-gated; a bad one is rolled back the same way."""
    good, bad = _bundle(tmp_path, "0.5.0"), _bundle(tmp_path, "0.6.0", broken=True)
    if not (fleet.base / "h1/opt/ser-edge/current").exists():
        assert fleet.deploy("2", SHIPPED).returncode == 0
    pids = {h: fleet.state(h)["main_pid"] for h in HOSTS}
    release = fleet.current("h1")
    r = fleet.deploy(release, good, "-e", "ser_edge_rollout=model")
    assert r.returncode == 0, r.stdout[-6000:]
    for h in HOSTS:
        assert "-0.5.0-" in fleet.model(h) and fleet.current(h) == release
        assert fleet.state(h)["main_pid"] == pids[h]  # reloaded, not restarted
        log = (fleet.base / h / "var/log/ser-edge.log").read_text()
        assert f"reloaded: model {SHIPPED_NAME} 0.5.0" in log

    r = fleet.deploy(release, bad, "-e", "ser_edge_rollout=model")
    assert r.returncode != 0 and "failed the health gate on h1" in r.stdout, r.stdout[-6000:]
    for h in HOSTS:
        assert "-0.5.0-" in fleet.model(h)
        assert fleet.state(h)["ready"]
