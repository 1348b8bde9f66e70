"""A real Node-RED (npm, installed by deploy/dev/setup.sh outside the checkout) running a
capture copy of the shipped flow: its debug nodes also write to Node-RED's console, and a
status node reports every node status there, so the test reads the flow's output from
Node-RED's own log."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import time
from pathlib import Path

from ser_edge.tools.localbroker import free_port
from tests.daemon_harness import stop_process

TOOLS = Path(os.environ.get("SER_TOOLS", Path.home() / ".cache" / "ser-edge"))
NODE_RED = TOOLS / "node-red" / "node_modules" / "node-red"
NODES = TOOLS / "node-red" / "node_modules" / "@node-red" / "nodes"
FLOW = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "node-red-flow.json"
EDITOR_DEFAULTS = Path(__file__).with_name("editor_defaults.js")

SETTINGS = """module.exports = {
    uiHost: "127.0.0.1",
    flowFile: "flows.json",
    credentialSecret: false,
    // The flow's dedupe list survives restarts in the 'file' store (deploy/examples/README.md).
    contextStorage: {default: {module: "memory"}, file: {module: "localfilesystem", config: {flushInterval: 1}}},
    logging: {console: {level: "info", metrics: false, audit: false}},
    diagnostics: {enabled: false},
    telemetry: {enabled: false},
};
"""
_DEBUG = re.compile(r"\[debug:([^\]]+)\] (.*)")


def editor_defaults() -> dict[str, dict]:
    """{node type: {property: default}} as the installed Node-RED's editor defines them."""
    r = subprocess.run(["node", str(EDITOR_DEFAULTS), str(NODES)], capture_output=True, text=True, timeout=60,
                       check=True)  # fmt: skip
    return json.loads(r.stdout)


def capture_copy(flow: list[dict], broker_port: int, env: dict[str, str] | None = None) -> list[dict]:
    """The flow pointed at the test broker, its debug nodes also on the console, a status
    node printing every status as `<node name>: <text>`, and tab variables replaced."""
    flow = copy.deepcopy(flow)
    tab = next(n for n in flow if n["type"] == "tab")
    for node in flow:
        if node["type"] == "mqtt-broker":
            node["broker"], node["port"] = "127.0.0.1", str(broker_port)
        if node["type"] == "debug":
            node["console"] = True
    for var in tab.get("env", []):
        var["value"] = (env or {}).get(var["name"], var["value"])
    flow += [
        {"id": "c0ffee0000000001", "type": "status", "z": tab["id"], "name": "", "scope": None, "x": 100, "y": 400,
         "wires": [["c0ffee0000000002"]]},
        {"id": "c0ffee0000000002", "type": "function", "z": tab["id"], "name": "status text", "outputs": 1,
         "func": "msg.payload = `${msg.status.source.name}: ${msg.status.text}`; return msg;", "timeout": 0,
         "noerr": 0, "initialize": "", "finalize": "", "libs": [], "x": 300, "y": 400, "wires": [["c0ffee0000000003"]]},
        {"id": "c0ffee0000000003", "type": "debug", "z": tab["id"], "name": "status", "active": True,
         "tosidebar": False, "console": True, "tostatus": False, "complete": "payload", "targetType": "msg",
         "statusVal": "", "statusType": "auto", "x": 500, "y": 400, "wires": []},
    ]  # fmt: skip
    return flow


class NodeRed:
    """`node red.js` with its own user folder (flows, settings, context store) and port."""

    def __init__(self, user_dir: Path, flow: list[dict], client_id: str | None) -> None:
        if not (NODE_RED / "red.js").is_file():
            raise RuntimeError(f"Node-RED is not installed in {NODE_RED.parent}: run deploy/dev/setup.sh")
        self.user_dir, self.client_id = user_dir, client_id
        user_dir.mkdir(parents=True, exist_ok=True)
        (user_dir / "settings.js").write_text(SETTINGS)
        (user_dir / "flows.json").write_text(json.dumps(flow))
        self.port = free_port()
        self.log_path = user_dir / "node-red.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> NodeRed:
        env = {k: v for k, v in os.environ.items() if k != "SER_NODERED_CLIENT_ID"}
        if self.client_id:
            env["SER_NODERED_CLIENT_ID"] = self.client_id
        self._mark = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            ["node", str(NODE_RED / "red.js"), "--userDir", str(self.user_dir), "--port", str(self.port),
             "--settings", str(self.user_dir / "settings.js")],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        if not self.wait(lambda: "Connected to broker" in self.log(since_start=True), 60):
            self.stop()
            raise RuntimeError(f"Node-RED did not connect to the broker:\n{self.log()[-3000:]}")
        return self

    def stop(self) -> None:
        stop_process(self.process, 20)

    def log(self, since_start: bool = False) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[self._mark :] if since_start else text

    def debug(self, name: str) -> list[str]:
        """What the debug node called ``name`` printed, oldest first, over every run."""
        return [m.group(2) for m in map(_DEBUG.search, self.log().splitlines()) if m and m.group(1) == name]

    def wait(self, predicate, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.process and self.process.poll() is not None:
                return bool(predicate())
            time.sleep(0.2)
        return False
