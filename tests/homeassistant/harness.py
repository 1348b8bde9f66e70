"""A real Home Assistant (2025.4, Python 3.13; installed by deploy/dev/setup.sh outside the
checkout) with its own config folder and port, onboarded through its API, the MQTT
integration added through its config flow as a user adds it, and read through its REST
and websocket APIs."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import websocket
import yaml

from ser_edge.tools.localbroker import free_port
from tests.daemon_harness import stop_process

TOOLS = Path(os.environ.get("SER_TOOLS", Path.home() / ".cache" / "ser-edge"))
HASS = TOOLS / "ha-venv" / "bin" / "hass"

CONFIG = """homeassistant:
  name: ser-edge test
  latitude: 52.5
  longitude: 13.4
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
counter: {counters}
automation: !include automations.yaml
logger:
  default: warning
"""
HISTORY = """recorder:
  commit_interval: 0
history:
"""
"""The recorder (SQLite in the config folder, every state written at once) and its history API."""


class HomeAssistant:
    def __init__(self, config_dir: Path, automations: list[dict], counters: list[str], history: bool = False) -> None:
        if not HASS.is_file():
            raise RuntimeError(f"Home Assistant is not installed in {HASS.parent.parent}: run deploy/dev/setup.sh")
        self.dir, self.port = config_dir, free_port()
        config_dir.mkdir(parents=True, exist_ok=True)
        counters_yaml = json.dumps({c: {"initial": 0} for c in counters})
        config = CONFIG.format(port=self.port, counters=counters_yaml) + (HISTORY if history else "")
        (config_dir / "configuration.yaml").write_text(config)
        (config_dir / "automations.yaml").write_text("[]\n")  # until MQTT is there (start)
        self.automations = automations
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = config_dir / "hass.log"
        self.process: subprocess.Popen | None = None
        self.token = ""

    def start(self, broker_port: int) -> HomeAssistant:
        log = self.log_path.open("a")
        self.process = subprocess.Popen([str(HASS), "-c", str(self.dir), "--skip-pip"], stdout=log,
                                        stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            try:
                self._call("GET", "/api/onboarding")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"Home Assistant did not start:\n{self.log()[-3000:]}") from None
                time.sleep(0.5)
        client = self.url + "/"
        code = self._call("POST", "/api/onboarding/users", {"client_id": client, "name": "Test", "username": "test",
                                                           "password": "test-pass-123", "language": "en"})  # fmt: skip
        token = self._call("POST", "/auth/token", {"grant_type": "authorization_code", "code": code["auth_code"],
                                                  "client_id": client}, form=True)  # fmt: skip
        self.token = token["access_token"]
        flow = self._call("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        done = self._call("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                          {"broker": "127.0.0.1", "port": broker_port})  # fmt: skip
        if done.get("type") != "create_entry":
            raise RuntimeError(f"the MQTT config flow did not finish: {done}")
        entry = done["result"]["entry_id"]

        def loaded() -> bool:
            entries = self._call("GET", "/api/config/config_entries/entry")
            return any(e["entry_id"] == entry and e["state"] == "loaded" for e in entries)

        if not self.wait(loaded, 60):
            raise RuntimeError(f"the MQTT integration did not load:\n{self.log()[-3000:]}")
        # The automations' MQTT triggers need the integration; a reload only sets up changed ones.
        (self.dir / "automations.yaml").write_text(yaml.safe_dump(self.automations, sort_keys=False))
        self._call("POST", "/api/services/automation/reload", {})
        return self

    def stop(self) -> None:
        stop_process(self.process, 60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _call(self, method: str, path: str, body: dict | None = None, form: bool = False):
        data = None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if body is not None:
            data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded" if form else "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def states(self) -> dict[str, dict]:
        return {s["entity_id"]: s for s in self._call("GET", "/api/states")}

    def state(self, entity_id: str) -> dict | None:
        return self.states().get(entity_id)

    def history(self, entity_id: str, since: str) -> list[str]:
        """The states the recorder holds for ``entity_id`` since ``since`` (ISO time), oldest first."""
        query = urllib.parse.urlencode({"filter_entity_id": entity_id, "minimal_response": "", "no_attributes": ""})
        found = self._call("GET", f"/api/history/period/{urllib.parse.quote(since)}?{query}")
        return [s["state"] for s in found[0]] if found else []

    def ws(self, *commands: dict) -> list:
        """Results of websocket API commands, in one authenticated connection."""
        conn = websocket.create_connection(f"ws://127.0.0.1:{self.port}/api/websocket", timeout=30)
        try:
            json.loads(conn.recv())  # auth_required
            conn.send(json.dumps({"type": "auth", "access_token": self.token}))
            if json.loads(conn.recv())["type"] != "auth_ok":
                raise RuntimeError("websocket auth failed")
            out = []
            for i, command in enumerate(commands, start=1):
                conn.send(json.dumps({"id": i, **command}))
                reply = json.loads(conn.recv())
                while reply.get("id") != i:
                    reply = json.loads(conn.recv())
                if not reply.get("success"):
                    raise RuntimeError(f"{command}: {reply}")
                out.append(reply["result"])
            return out
        finally:
            conn.close()

    def wait(self, predicate, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.3)
        return False
