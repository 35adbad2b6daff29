"""Drive a real ComfyUI over HTTP: find the checkout, start ``main.py --cpu`` in a subprocess, talk to it.

Nothing here imitates ComfyUI: the server is the real one from ``$COMFYUI_PATH`` run with its own Python
(``$COMFYUI_PYTHON``, else ``$COMFYUI_PATH/.venv/bin/python``). Each server gets a temporary
``--base-directory`` (its own input/output/models/user/custom_nodes folders) whose ``custom_nodes/syn2seq``
is a link to this pack, so the tests never touch the user's ComfyUI folders and load no other pack.

Only the standard library is used, plus ``websocket-client`` for progress events (imported lazily).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
COMFY_ENV = "COMFYUI_PATH"
PYTHON_ENV = "COMFYUI_PYTHON"
START_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class ComfyInstall:
    root: Path
    python: Path


def find_comfyui() -> ComfyInstall | str:
    """The ComfyUI checkout and its Python, or the reason why there is none (to print when skipping)."""
    root = os.environ.get(COMFY_ENV)
    if not root:
        return f"{COMFY_ENV} is not set (point it at a ComfyUI checkout; see scripts/setup_comfyui.sh)"
    r = Path(root).expanduser()
    if not (r / "main.py").is_file() or not (r / "comfy_api").is_dir():
        return f"{COMFY_ENV}={root} is not a ComfyUI checkout with the V3 API (no main.py / comfy_api)"
    py = os.environ.get(PYTHON_ENV) or str(r / ".venv" / "bin" / "python")
    if not Path(py).is_file():
        return f"no Python for ComfyUI at {py} (set {PYTHON_ENV}, or make {r}/.venv with scripts/setup_comfyui.sh)"
    return ComfyInstall(r, Path(py))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A ComfyUI server in a subprocess with a private base directory. Use as a context manager."""

    def __init__(self, install: ComfyInstall, base_dir: Path, extra_args: tuple[str, ...] = (), cpu: bool = True):
        self.install = install
        self.base = Path(base_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "comfyui.log"
        self.extra_args = tuple(extra_args)
        self.cpu = cpu  # False: ComfyUI's default device (a GPU where there is one)
        self.process: subprocess.Popen | None = None
        self.client_id = uuid.uuid4().hex

    # --- folders ------------------------------------------------------------------------------------
    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def models_dir(self) -> Path:
        return self.base / "models"

    # --- life cycle ---------------------------------------------------------------------------------
    def start(self) -> ComfyServer:
        for sub in ("custom_nodes", "input", "output", "models", "user", "temp"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        link = self.base / "custom_nodes" / "syn2seq"
        if not link.exists():
            link.symlink_to(PACK_ROOT, target_is_directory=True)
        cmd = [str(self.install.python), "main.py", *(["--cpu"] if self.cpu else []), "--listen", "127.0.0.1",
               "--port", str(self.port),
               "--base-directory", str(self.base), "--preview-method", "none", *self.extra_args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)  # the test runner's path must not leak into ComfyUI's Python
        self._log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - open while the server runs
        self.process = subprocess.Popen(cmd, cwd=self.install.root, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode} while starting:\n{self.log_tail()}")
            try:
                self.get("/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> ComfyServer:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # --- HTTP ---------------------------------------------------------------------------------------
    def get(self, path: str, timeout: float = 30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def post(self, path: str, data: dict | None = None, timeout: float = 30) -> tuple[int, dict | None]:
        req = urllib.request.Request(self.url + path, data=json.dumps(data or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                body = r.read()
                return r.status, (json.loads(body) if body else None)
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body)
            except json.JSONDecodeError:
                return e.code, {"raw": body.decode(errors="replace")}

    def object_info(self) -> dict:
        return self.get("/object_info", timeout=120)

    def queue(self, prompt: dict) -> str:
        """POST a prompt (API format); returns its id. Raises with ComfyUI's node errors if refused."""
        status, body = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
        if status != 200:
            raise PromptRejected(status, body)
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        """Poll /history until the prompt has finished; returns its history entry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry:  # ComfyUI writes the history entry when the prompt has finished (or failed, or stopped)
                return entry
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s:\n{self.log_tail()}")

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        return self.wait(self.queue(prompt), timeout)

    def interrupt(self) -> None:
        self.post("/interrupt", {})

    def websocket(self, timeout: float = 60):
        """A websocket-client connection to /ws for this server's client id (progress and status events)."""
        import websocket  # websocket-client

        return websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}",
                                           timeout=timeout)


def run_inprocess_checks(install: ComfyInstall, script: Path, work: Path, timeout: float = 300,
                         args: tuple[str, ...] = ()) -> dict:
    """Run a checks script (``inprocess_checks.main``'s protocol: ``script COMFYUI_PATH WORK_DIR [args]``) with
    ComfyUI's own Python; its results."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the test runner's path must not leak into ComfyUI's Python
    proc = subprocess.run([str(install.python), str(script), str(install.root), str(work), *args],
                          capture_output=True, text=True, timeout=timeout, check=False, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("SYN2SEQ_RESULTS ")]
    assert lines, f"the checks did not report (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("SYN2SEQ_RESULTS "))


class PromptRejected(RuntimeError):
    def __init__(self, status: int, body):
        self.status = status
        self.body = body or {}
        super().__init__(f"/prompt answered {status}: {json.dumps(body, indent=1)[:4000]}")

    @property
    def node_errors(self) -> dict:
        return self.body.get("node_errors", {})


def status_messages(entry: dict) -> list[tuple[str, dict]]:
    return [(m[0], m[1]) for m in entry.get("status", {}).get("messages", [])]


def output_files(entry: dict) -> list[dict]:
    """Every file a finished prompt reports in its outputs (images, videos, ...)."""
    files = []
    for node_out in entry.get("outputs", {}).values():
        for key, items in node_out.items():
            if isinstance(items, list):
                files += [dict(i, node_output=key) for i in items if isinstance(i, dict) and "filename" in i]
    return files


if __name__ == "__main__":  # python -m tests.nodes.harness: start a server with the pack and keep it up
    found = find_comfyui()
    if isinstance(found, str):
        sys.exit(found)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="syn2seq-comfy-") as tmp, ComfyServer(found, Path(tmp)) as server:
        print(f"ComfyUI at {server.url} (base {tmp}); Ctrl-C to stop", flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
