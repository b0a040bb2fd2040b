#!/usr/bin/env python3
"""Cadence against a real Home Assistant: what an owner sees, checked through HA's REST API.

Not part of CI (it downloads Home Assistant). For each Python it finds (3.11;
3.13 too if there is one) it builds — once, kept under ``--work`` — a venv
with the newest Home Assistant that installs on that Python, plus the
requirements of the integrations used here (``--skip-pip`` then starts HA
without the network; pins: HA's own package constraints, and ``josepy<2``,
whose 2.x made every HTTP request of HA 2024.3 fail with 500). Then:

- a mosquitto on 127.0.0.1, HA with the MQTT entry pre-seeded and onboarded
  through its API (a token for the REST API);
- a small sound model trained on the shared room sounds; two Cadence daemons
  (``gym``: video + crying baby, snapshots on; ``kitchen-pi``: another video +
  a vacuum cleaner) — the real ``cadence run`` processes;
- checks: both devices' entities with the ids Cadence announces (no ``_2``),
  distinct names, counts followed, the current exercise and the day's count per
  exercise (shipped exercise model), sound events (no ``background`` type),
  diagnostics and the problem sensor of a finished video, the buttons (reset,
  reload, snapshot → an image HA serves), two automations firing,
  availability on SIGTERM and on kill -9, the count restored after kill -9, and
  no warning or error from HA about Cadence's payloads;
- with ``--screenshot FILE``, the gym device's page in headless Chromium.

    make check-homeassistant            # or: python scripts/check_homeassistant.py [--python 3.11]

Prints one line per check; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
VIDEOS, SOUNDS = SHARED / "videos", SHARED / "room-sounds-dev"
INTEGRATIONS = ["frontend", "config", "api", "http", "onboarding", "mqtt", "sensor", "binary_sensor", "button",
                "event", "image", "automation", "input_boolean"]
EXTRA_PINS = ["josepy<2"]
USER, PASSWORD = "check", "cadence-check"
DEVICES = {  # device id → (name, video, sound clip label)
    "gym": (None, "jumping_jacks_12.mp4", "crying_baby"),  # its video loops: someone is always in view
    "kitchen-pi": ("Kitchen", "jumping_jacks_11.mp4", "vacuum_cleaner"),
}
LABELS = ("crying_baby", "vacuum_cleaner", "hammering", "background")
results: list[tuple[bool, str]] = []


def say(text: str) -> None:
    print(text, flush=True)


def check(ok: bool, text: str) -> bool:
    results.append((bool(ok), text))
    say(f"{'PASS' if ok else 'FAIL'}  {text}")
    return bool(ok)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(predicate: Any, timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = predicate()
            if value:
                return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


# ------------------------------------------------------------------ venvs
def find_python(minor: str) -> str | None:
    found = shutil.which(f"python{minor}")
    candidates = ([found] if found else []) + sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{minor}.*/bin/python3")))
    for python in reversed(candidates):
        out = subprocess.run([python, "-c", "import sys, venv; print(sys.version.split()[0])"], capture_output=True, text=True)
        if out.returncode == 0:
            return python
    return None


def ha_venv(python: str, work: Path) -> tuple[Path, str]:
    """A venv with the newest Home Assistant that installs on ``python`` and the integrations' requirements."""
    minor = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                           text=True).stdout.strip()
    venv = work / f"venv-py{minor}"
    py = venv / "bin" / "python"
    version = subprocess.run([str(py), "-c", "from homeassistant.const import __version__; print(__version__)"],
                             capture_output=True, text=True).stdout.strip() if py.exists() else ""
    if not version:
        say(f"== building {venv} (Home Assistant for Python {minor}; a few minutes)")
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "homeassistant"], check=True)
        version = subprocess.run([str(py), "-c", "from homeassistant.const import __version__; print(__version__)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    marker = venv / f".cadence-requirements-{version}"
    if not marker.exists():
        code = ("import json, pathlib, sys, homeassistant\n"
                "comp = pathlib.Path(homeassistant.__file__).parent / 'components'\n"
                "todo, seen, reqs = sys.argv[1:], set(), set()\n"
                "while todo:\n"
                "    d = todo.pop()\n"
                "    if d in seen: continue\n"
                "    seen.add(d)\n"
                "    m = json.loads((comp / d / 'manifest.json').read_text())\n"
                "    reqs.update(m.get('requirements', []))\n"
                "    todo += m.get('dependencies', []) + m.get('after_dependencies', [])\n"
                "print('\\n'.join(sorted(reqs)))\n")
        reqs = subprocess.run([str(py), "-c", code, *INTEGRATIONS], capture_output=True, text=True, check=True).stdout.split()
        constraints = subprocess.run([str(py), "-c", "import homeassistant, pathlib; "
                                      "print(pathlib.Path(homeassistant.__file__).parent / 'package_constraints.txt')"],
                                     capture_output=True, text=True, check=True).stdout.strip()
        say(f"== installing the requirements of {', '.join(INTEGRATIONS)} into {venv}")
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-c", constraints, *reqs, *EXTRA_PINS], check=True)
        marker.write_text("\n".join(reqs))
    return venv, version


# ------------------------------------------------------------ the pieces
class Mosquitto:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        + ("user root\n" if os.geteuid() == 0 else ""))
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(lambda: socket.create_connection(("127.0.0.1", self.port), 0.2).close() or True, 10, "mosquitto")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Watcher:
    """Records the last message per topic under cadence/# (what the daemons say)."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.last: dict[str, bytes] = {}
        self.all: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"check-{os.getpid()}")
        self.client.on_connect = lambda c, *a: c.subscribe("cadence/#", qos=1)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.last[msg.topic] = bytes(msg.payload)
            self.all.append((msg.topic, bytes(msg.payload)))

    def json(self, topic: str) -> Any:
        with self.lock:
            payload = self.last.get(topic)
        return json.loads(payload) if payload else None

    def since(self, n: int, topic: str) -> list[Any]:
        with self.lock:
            return [json.loads(p) for t, p in self.all[n:] if t == topic and p]

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)


class HomeAssistant:
    def __init__(self, venv: Path, folder: Path, broker: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = folder / "config"
        (self.config / ".storage").mkdir(parents=True, exist_ok=True)
        (self.config / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        entry = {"entry_id": "cadencecheckmqtt", "version": 1, "minor_version": 1, "domain": "mqtt",
                 "title": "127.0.0.1", "data": {"broker": "127.0.0.1", "port": broker, "discovery": True},
                 "options": {}, "pref_disable_new_entities": False, "pref_disable_polling": False, "source": "user",
                 "unique_id": None, "disabled_by": None}
        (self.config / ".storage" / "core.config_entries").write_text(json.dumps(
            {"version": 1, "minor_version": 1, "key": "core.config_entries", "data": {"entries": [entry]}}))
        self.log = self.config / "home-assistant.log"
        self.proc = subprocess.Popen([str(venv / "bin" / "hass"), "-c", str(self.config), "--skip-pip", "--log-no-color",
                                      "--log-file", str(self.log)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.token = ""

    def request(self, method: str, path: str, body: Any = None, *, form: bool = False, raw: bool = False) -> Any:
        data = None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            content = resp.read()
        return content if raw else (json.loads(content) if content else None)

    def up(self) -> bool:
        try:
            self.request("GET", "/api/onboarding")
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Home Assistant exited ({self.proc.returncode}); see {self.log}") from None
            return False

    def onboard(self) -> None:
        client = self.base + "/"
        code = self.request("POST", "/api/onboarding/users", {"client_id": client, "name": "Check", "username": USER,
                                                              "password": PASSWORD, "language": "en"})["auth_code"]
        self.token = self.request("POST", "/auth/token", {"grant_type": "authorization_code", "code": code,
                                                          "client_id": client}, form=True)["access_token"]
        for step, body in (("core_config", {}), ("analytics", {}),
                           ("integration", {"client_id": client, "redirect_uri": client + "?auth_callback=1"})):
            with contextlib.suppress(urllib.error.HTTPError):
                self.request("POST", f"/api/onboarding/{step}", body)

    def login_code(self) -> str:
        """An authorization code for the frontend (what its login page would get)."""
        client = self.base + "/"
        token, self.token = self.token, ""
        try:
            flow = self.request("POST", "/auth/login_flow", {"client_id": client, "handler": ["homeassistant", None],
                                                             "redirect_uri": client + "?auth_callback=1"})
            done = self.request("POST", f"/auth/login_flow/{flow['flow_id']}",
                                {"client_id": client, "username": USER, "password": PASSWORD})
        finally:
            self.token = token
        return done["result"]

    def state(self, entity_id: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", f"/api/states/{entity_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def template(self, text: str) -> str:
        return self.request("POST", "/api/template", {"template": text}, raw=True).decode()

    def press(self, entity_id: str) -> None:
        self.request("POST", "/api/services/button/press", {"entity_id": entity_id})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


CONFIGURATION = """\
homeassistant:
  name: Cadence check
  unit_system: metric
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
http:
  server_host: 127.0.0.1
  server_port: {port}
frontend:
config:
api:
logger:
  default: warning
input_boolean:
  baby_crying:
    name: Baby crying
  workout_done:
    name: Workout done
automation:
  - alias: The baby is crying
    trigger:
      - platform: state
        entity_id: event.cadence_gym_sound
    condition:
      - condition: template
        value_template: "{{{{ trigger.to_state.attributes.event_type == 'crying_baby' }}}}"
    action:
      - service: input_boolean.turn_on
        target:
          entity_id: input_boolean.baby_crying
  - alias: Ten repetitions today
    trigger:
      - platform: numeric_state
        entity_id: sensor.cadence_gym_reps
        above: 10
    action:
      - service: input_boolean.turn_on
        target:
          entity_id: input_boolean.workout_done
"""


def train_model(folder: Path) -> Path:
    data, model = folder / "data", folder / "sound.model"
    if model.exists() and _loads(model):  # a model of an older Cadence is trained again
        return model
    for label in LABELS:
        (data / label).mkdir(parents=True, exist_ok=True)
        for clip in sorted((SOUNDS / label).glob("*.flac"))[1:6]:  # the first clip of each is played, never trained on
            target = data / label / clip.name
            if not target.exists():
                target.symlink_to(clip)
    say("== training a small sound model on the shared room sounds")
    subprocess.run([sys.executable, "-m", "device", "train", "sound", str(data), "--out", str(model), "--augment", "0",
                    "--state-dir", str(folder / "train-state"), "--quiet"], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL)
    return model


def _loads(model: Path) -> bool:
    from device.components import CadenceError
    from device.daemon.pipelines import load_sound_model

    try:
        load_sound_model(model)
    except CadenceError as exc:
        say(f"   {model} not reused: {exc}")
        return False
    return True


def daemon_config(folder: Path, device: str, broker: int, model: Path) -> Path:
    name, video, label = DEVICES[device]
    state = folder / device
    (state / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy(model, state / "models" / "sound.model")
    clip = sorted((SOUNDS / label).glob("*.flac"))[0]
    config = folder / f"{device}.toml"
    config.write_text(
        f'[device]\nid = "{device}"\n' + (f'name = "{name}"\n' if name else "")
        + f'[camera]\nsource = "{VIDEOS / video}"\n' + ("loop = true\n" if device == "gym" else "")
        + f'[microphone]\ndevice = "{clip}"\nloop = true\n'
        + ('[snapshot]\nenabled = true\ninterval = 5\n' if device == "gym" else "")
        + f'[storage]\nstate_dir = "{state}"\nsave_interval = 1\n'
        + f'[mqtt]\nhost = "127.0.0.1"\nport = {broker}\nstats_interval = 5\n')
    return config


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "device", "run", "--config", str(config)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def expected_entities(config: Path, labels: list[str], exercise_labels: list[str]) -> list[str]:
    from device.daemon.config import load_config
    from device.daemon.discovery import discovery_messages, exercise_names
    from device.daemon.topics import Topics

    cfg = load_config(config)
    messages = discovery_messages(cfg, labels, Topics.for_config(cfg), exercises=exercise_names(cfg, exercise_labels))
    return sorted(p["default_entity_id"] for _, p in messages if p)


def annotated_count(video: str) -> int:
    with open(VIDEOS / "annotations.csv") as f:
        return next(int(row["count"]) for row in csv.DictReader(f) if row["file"] == video)


def screenshot(ha: HomeAssistant, venv: Path, path: Path) -> bool:
    """The gym device's page, logged in as the frontend would be (an authorization code in the URL)."""
    device = ha.template("{{ device_id('sensor.cadence_gym_reps') }}").strip()
    state = base64.b64encode(json.dumps({"hassUrl": ha.base, "clientId": ha.base + "/"}).encode()).decode()
    url = (f"{ha.base}/config/devices/device/{device}?auth_callback=1&code={ha.login_code()}"
           f"&state={urllib.parse.quote(state)}")
    helper = REPO / "scripts" / "check_homeassistant_screenshot.py"
    done = subprocess.run([str(venv / "bin" / "python"), str(helper), url, str(path)], capture_output=True, text=True,
                          timeout=600)
    return check(done.returncode == 0 and path.exists() and _drawn(path),
                 f"screenshot of the gym device page: {path}" + (f" ({done.stderr.strip()[-200:]})" if done.returncode else ""))


def _drawn(path: Path) -> bool:
    """True if the page area right of the sidebar shows something (not a blank, still-loading page)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return image is not None and float((image[:, image.shape[1] // 5:] < 160).mean()) > 0.01


# ------------------------------------------------------------------ checks
def run_checks(python: str, work: Path, shot: Path | None) -> None:
    from device.daemon.pipelines import shipped_exercise_model
    from device.daemon.retrain import model_labels

    venv, version = ha_venv(python, work)
    say(f"== Home Assistant {version} on Python "
        + subprocess.run([str(venv / 'bin' / 'python'), '-V'], capture_output=True, text=True).stdout.split()[1])
    folder = work / f"run-{version}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    model = train_model(work / "model")
    broker = Mosquitto(folder)
    watcher = Watcher(broker.port)
    ha = HomeAssistant(venv, folder, broker.port)
    daemons: dict[str, subprocess.Popen[bytes]] = {}
    started = time.monotonic()
    try:
        wait(ha.up, 600, "Home Assistant's HTTP server")
        ha.onboard()
        say(f"   Home Assistant up and onboarded after {time.monotonic() - started:.0f} s")
        configs = {d: daemon_config(folder, d, broker.port, model) for d in DEVICES}
        for device, config in configs.items():
            daemons[device] = start_daemon(config, folder / f"{device}.log")
        labels = model_labels(model) or []
        exercise_labels = model_labels(shipped_exercise_model()) or []
        # 1. entities and their ids, for two devices
        for device, config in configs.items():
            ids = expected_entities(config, labels, exercise_labels)
            missing: list[str] = []
            try:
                wait(lambda: all(ha.state(i) is not None for i in ids), 240, f"{device}'s entities")
            except TimeoutError:
                missing = [i for i in ids if ha.state(i) is None]
            check(not missing, f"{device}: the {len(ids)} entities Cadence announces exist with the announced ids"
                  + (f" (missing: {missing})" if missing else ""))
        states = ha.request("GET", "/api/states")
        cadence = [s["entity_id"] for s in states if "cadence" in s["entity_id"]]
        check(not [e for e in cadence if re.search(r"_\d+$", e)], f"no duplicated entity ids ({len(cadence)} Cadence entities)")
        names = {ha.state("sensor.cadence_gym_reps")["attributes"]["friendly_name"],
                 ha.state("sensor.cadence_kitchen_pi_reps")["attributes"]["friendly_name"]}
        check(len(names) == 2, f"two devices, two names: {sorted(names)}")
        # 2. counts followed
        expected = annotated_count(DEVICES["gym"][1])
        try:
            wait(lambda: float(ha.state("sensor.cadence_gym_reps")["state"]) >= expected, 300, "the gym count")
        except TimeoutError:
            pass
        reps = ha.state("sensor.cadence_gym_reps")
        published = (watcher.json("cadence/gym/state/count") or {}).get("count")
        check(float(reps["state"]) >= expected and float(reps["state"]) == published,
              f"sensor.cadence_gym_reps follows the count: {reps['state']} (published {published}, the video has {expected})")
        sure = reps["attributes"]
        check(all(isinstance(sure.get(k), (int, float)) and 0 <= sure[k] <= 1 for k in ("periodicity", "ambiguity")),
              f"sensor.cadence_gym_reps shows the counter's confidence: periodicity {sure.get('periodicity')}, "
              f"ambiguity {sure.get('ambiguity')}")
        # 2b. the exercise (the shipped model): the current one and the day's count of each
        def exercise_shown() -> Any:
            current = ha.state("sensor.cadence_gym_exercise")["state"]
            jacks = float(ha.state("sensor.cadence_gym_reps_jumping_jack")["state"])
            totals = (watcher.json("cadence/gym/state/count") or {}).get("totals") or {}
            return current == "jumping_jack" and jacks > 0 and jacks == totals.get("jumping_jack") and (current, jacks)

        try:
            wait(exercise_shown, 120, "the gym's exercise and its count")
        except TimeoutError:
            pass
        current = ha.state("sensor.cadence_gym_exercise")
        jacks = ha.state("sensor.cadence_gym_reps_jumping_jack")["state"]
        squats = ha.state("sensor.cadence_gym_reps_squat")["state"]
        totals = (watcher.json("cadence/gym/state/count") or {}).get("totals")
        check(current["state"] == "jumping_jack" and float(jacks) > 0 and float(squats) == 0
              and 0 < float(current["attributes"].get("confidence") or 0) <= 1,
              f"sensor.cadence_gym_exercise: {current['state']} (confidence {current['attributes'].get('confidence')}); "
              f"sensor.cadence_gym_reps_jumping_jack {jacks}, …_reps_squat {squats} (published totals {totals})")
        # 3. sound events
        event = wait(lambda: (s := ha.state("event.cadence_gym_sound")) and s["attributes"].get("event_type") and s, 120,
                     "a sound event")
        check(event["attributes"]["event_type"] == "crying_baby" and "background" not in event["attributes"]["event_types"],
              f"event.cadence_gym_sound: {event['attributes']['event_type']}; types {event['attributes']['event_types']}")
        baby = wait(lambda: ha.state("input_boolean.baby_crying")["state"] == "on", 60, "the baby automation")
        workout = ha.state("input_boolean.workout_done")["state"] == "on"
        check(baby and workout, "automations fired: 'The baby is crying' and 'Ten repetitions today'")
        # 4. diagnostics and problems
        diag = {k: ha.state(f"sensor.cadence_gym_{k}")["state"]
                for k in ("fps", "cpu", "memory", "uptime", "sound_model", "exercise_model")}
        check(all(v not in ("unknown", "unavailable") for v in diag.values()), f"diagnostics: {diag}")
        problem = wait(lambda: ha.state("binary_sensor.cadence_kitchen_pi_vision_problem")["state"] == "on"
                       and ha.state("binary_sensor.cadence_kitchen_pi_vision_problem"), 300, "the finished video's problem")
        check(problem["attributes"].get("problem") is not None and ha.state("binary_sensor.cadence_kitchen_pi_audio_problem")["state"] == "off",
              f"kitchen-pi's video ended: vision problem on ({problem['attributes'].get('problem')}), audio problem off")
        # 5. buttons
        n = len(watcher.all)
        before = ha.state("sensor.cadence_gym_sound_model")["attributes"].get("loaded_at")
        ha.press("button.cadence_gym_reload")
        answer = wait(lambda: watcher.since(n, "cadence/gym/result"), 60, "the reload answer")
        after = wait(lambda: (a := ha.state("sensor.cadence_gym_sound_model")["attributes"].get("loaded_at")) != before and a,
                     60, "the reloaded model")
        check(answer[-1]["ok"] and after, f"button Reload models: answered {answer[-1]['message']!r}")
        image_before = ha.state("image.cadence_gym_snapshot")["state"]
        n = len(watcher.all)
        ha.press("button.cadence_gym_take_snapshot")
        taken = wait(lambda: watcher.since(n, "cadence/gym/result"), 60, "the snapshot answer")[-1]
        check(taken["ok"], f"button Take snapshot answered: {taken['message']!r}")
        wait(lambda: ha.state("image.cadence_gym_snapshot")["state"] != image_before, 60, "a new snapshot")
        picture = ha.request("GET", "/api/image_proxy/image.cadence_gym_snapshot", raw=True)
        (folder / "snapshot.jpg").write_bytes(picture)
        check(picture[:2] == b"\xff\xd8", f"button Take snapshot: image.cadence_gym_snapshot serves a {len(picture)}-byte JPEG")
        if shot is not None:
            screenshot(ha, venv, shot)
        # 6. availability on SIGTERM, kill -9, and the count after kill -9
        kitchen = [e for e in cadence if e.startswith(("sensor.cadence_kitchen", "binary_sensor.cadence_kitchen",
                                                       "event.cadence_kitchen", "button.cadence_kitchen"))]
        t0 = time.monotonic()
        daemons["kitchen-pi"].send_signal(signal.SIGTERM)
        wait(lambda: all(ha.state(e)["state"] == "unavailable" for e in kitchen), 60, "kitchen-pi unavailable", 0.2)
        check(daemons["kitchen-pi"].wait(30) == 0, f"SIGTERM: all {len(kitchen)} kitchen-pi entities unavailable "
              f"after {time.monotonic() - t0:.1f} s, exit status 0")
        gym = [e for e in cadence if e.startswith(("sensor.cadence_gym", "binary_sensor.cadence_gym", "button.cadence_gym"))]
        t0 = time.monotonic()
        daemons["gym"].kill()
        shown = float(ha.state("sensor.cadence_gym_reps")["state"])
        counted = json.loads((folder / "gym" / "daemon-state.json").read_text())["count"]["count"]  # as a power cut leaves it
        wait(lambda: all(ha.state(e)["state"] == "unavailable" for e in gym), 60, "gym unavailable", 0.2)
        check(True, f"kill -9: all {len(gym)} gym entities unavailable after {time.monotonic() - t0:.1f} s (Last Will)")
        n = len(watcher.all)
        daemons["gym"] = start_daemon(configs["gym"], folder / "gym.log")
        restored = wait(lambda: watcher.since(n, "cadence/gym/state/count"), 120, "the restarted gym's count")[0]
        wait(lambda: ha.state("sensor.cadence_gym_reps")["state"] != "unavailable", 120, "gym available again")
        # the saved count first, then what the broker's retained count holds beyond it: never a step back
        reps = lambda: float(ha.state("sensor.cadence_gym_reps")["state"])  # noqa: E731
        back = wait(lambda: [reps()] if reps() >= shown else None, 120, "the count shown at the kill")[0]
        check(restored["count"] == counted and back >= shown,
              f"after kill -9 and a restart the day's count is back: {back} (saved {counted}, the rest from the "
              f"broker's retained count; HA showed {shown} at the kill, save_interval = 1 s)")
        ha.press("button.cadence_gym_reset_count")
        wait(lambda: float(ha.state("sensor.cadence_gym_reps")["state"]) < counted, 60, "the reset")
        check(True, f"button Reset count: sensor.cadence_gym_reps {ha.state('sensor.cadence_gym_reps')['state']}")
        # 7. what HA said about it
        log = [line for line in ha.log.read_text(errors="replace").splitlines() if re.search(r"\b(WARNING|ERROR)\b", line)]
        about = re.compile(r"components\.(mqtt|sensor|binary_sensor|event|image|button)\b|cadence/|[Tt]emplate")
        complaints = [line for line in log if about.search(line)]
        check(not complaints, "no warning or error from Home Assistant about Cadence's payloads")
        for line in complaints[:20]:
            say(f"      {line[:300]}")
        say(f"   other warnings and errors in Home Assistant's log ({len(log) - len(complaints)}), not about Cadence:")
        for line in [line for line in log if not about.search(line)][:12]:
            say(f"      {re.sub(r'^[0-9-]+ [0-9:.]+ ', '', line)[:200]}")
    except TimeoutError as exc:
        check(False, str(exc))
    finally:
        for proc in daemons.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(30)
        ha.stop()
        watcher.client.loop_stop()
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", metavar="X.Y",
                        help="only this Python (3.11, 3.13); default: each that is installed")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cadence-ha"), help="venvs and runs (default /tmp/cadence-ha)")
    parser.add_argument("--screenshot", type=Path, help="save the gym device page as this PNG (newest HA checked)")
    args = parser.parse_args()
    pythons = [(minor, find_python(minor)) for minor in (args.python or ["3.11", "3.13"])]
    found = [(minor, python) for minor, python in pythons if python]
    for minor, python in pythons:
        if not python:
            say(f"== no Python {minor} here: its Home Assistant releases are not checked")
    args.work.mkdir(parents=True, exist_ok=True)
    for i, (minor, python) in enumerate(found):
        run_checks(python, args.work, args.screenshot if i == len(found) - 1 else None)
    failed = [text for ok, text in results if not ok]
    say(f"== {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
