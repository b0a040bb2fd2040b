"""``cadence retrain sound|exercise``: what an owner runs over SSH to teach the device.

With systemd (and without ``--foreground``) it starts
``cadence-retrain.service`` — a low-priority oneshot that survives the SSH
session ending, told what to train by a request file — and streams the unit's
log until it finishes. Otherwise it runs ``cadence train sound|exercise``
itself. Training writes a *candidate* beside the model (``models/.retrain/``);
it is published — as a new version, the previous one kept for rollback — only
if the daemon's loader takes it and it keeps every label the active model has
(for the exercise model, the shipped one while the owner has none;
``--allow-label-loss`` publishes it anyway, loudly): a label whose examples all
went missing must not silently stop its alerts or its counts. Then it prints the
new model's metrics and waits until the running daemon says on MQTT (the
model's retained state) that it switched to the new file; a daemon that never
does is a failure (exit status 1), not a success.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from ..components import CadenceError, atomic_write, atomic_write_json, sha256_file
from ..pose.sets import NOT_AN_EXERCISE
from ..storage import SOUND_DATA
from .children import die_with_parent
from .config import Config

UNIT = "cadence-retrain.service"
REQUEST = "retrain-request.json"  # what `cadence retrain` asks of the unit's run (what to train, its options)
TRAINER = [sys.executable, "-m", "device", "train"]  # + KIND DATA --out MODEL --state-dir DIR


@dataclasses.dataclass(frozen=True)
class Kind:
    """What retraining one kind of model needs to know."""

    model: Callable[[Config], Path]  # the owner's model file, which the daemon watches
    data: str  # the training data under the state directory
    teach: str  # how an owner makes training data
    loader: Callable[[Path, bytes], Any]  # the daemon's loader, given the file's bytes (a candidate it refuses is not published)
    classifier: Callable[[Any], Any]  # the device.learn classifier inside what the loader returns (it is published)
    shipped: Callable[[], Path] | None = None  # the active model while the owner's file does not exist
    train_options: tuple[str, ...] = ()
    not_lost: tuple[str, ...] = ()  # labels that are no loss when missing (no exercise: unknown, none)


def _load_sound(path: Path, data: bytes) -> Any:
    from .pipelines import load_sound_model

    return load_sound_model(path, data)


def _load_exercise(path: Path, data: bytes) -> Any:
    from .pipelines import load_exercise_model

    return load_exercise_model(path, data)


def _shipped_exercise() -> Path:
    from .pipelines import shipped_exercise_model

    return shipped_exercise_model()


KINDS = {
    "sound": Kind(lambda c: c.sound_model_path, SOUND_DATA,
                  "record clips with `cadence record sound LABEL`, or copy them into <label>/ folders there",
                  _load_sound, lambda model: model, train_options=("--keep-versions", "1")),
    "exercise": Kind(lambda c: c.exercise_model_path, "exercise-data",
                     "record examples with `cadence record exercise LABEL`, or copy videos or .npy pose arrays "
                     "into <label>/ folders there", _load_exercise, lambda model: model.model, _shipped_exercise,
                     train_options=("--keep-versions", "1"), not_lost=NOT_AN_EXERCISE),
}


class RetrainError(CadenceError):
    """Retraining could not start or failed."""


def systemd_available() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _python_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def candidate_path(model: Path) -> Path:
    """Where training writes before the label check publishes (beside the model)."""
    return model.parent / ".retrain" / model.name


def model_labels(path: Path) -> list[str] | None:
    """The labels a model file was trained on (None: no readable model there)."""
    from ..components.persistence import load_state

    try:
        meta, _ = load_state(path)
    except Exception:
        return None
    labels = meta.get("labels")
    # without the model's own classes ("_negatives": the shipped negatives, never a label of the owner's)
    return [str(label) for label in labels if not str(label).startswith("_")] if isinstance(labels, list) else None


def lost_labels(active: Path, candidate: list[str], not_lost: tuple[str, ...] = ()) -> list[str]:
    """The active model's labels the candidate (its labels) does not have (``not_lost`` aside)."""
    before = model_labels(active)
    if not before:
        return []
    return sorted(set(before) - set(candidate) - set(not_lost))


def active_model(kind: Kind, config: Config) -> Path:
    """The file of the model the daemon runs now: the owner's, else the shipped one."""
    model = kind.model(config)
    if model.exists() or kind.shipped is None:
        return model
    return kind.shipped()


def _train_foreground(config: Config, what: str, data_dir: Path, *, allow_label_loss: bool = False) -> None:
    kind = KINDS[what]
    model = kind.model(config)
    candidate = candidate_path(model)
    # a retrain cut by a power loss or a kill continues from its checkpoints when run again on the same data
    cmd = [*TRAINER, what, str(data_dir), "--out", str(candidate), "--state-dir", str(config.state_dir),
           "--resume-if-interrupted", *kind.train_options]
    print(f"retrain: training on {data_dir} → {model}", flush=True)
    code, said = _run_trainer(cmd)
    if code != 0:
        cause = said or (f"training was killed by signal {_signal_name(-code)}" if code < 0
                         else f"training failed (exit status {code})")
        raise RetrainError(f"{cause}; the previous model is still active")
    from ..learn import read_classifier_file

    # read once and verified once: what is checked below is what is published, whatever becomes of the file
    try:
        classifier = kind.classifier(kind.loader(candidate, read_classifier_file(candidate)))
    except Exception as exc:
        raise RetrainError(f"the new {what} model is not one the daemon can load ({exc}); "
                           "the previous model is still active") from None
    lost = lost_labels(active_model(kind, config), classifier.taught_labels, kind.not_lost)
    noun = "clips" if what == "sound" else "examples"
    verb = "detects" if what == "sound" else "recognises"
    if lost and not allow_label_loss:
        raise RetrainError(f"the new model lacks {', '.join(lost)}, which the active model {verb} (no usable {noun} "
                           f"for {'it' if len(lost) == 1 else 'them'} in {data_dir}?); the active model is kept — "
                           f"add {noun}, or publish it anyway with --allow-label-loss")
    if lost:
        print(f"retrain: WARNING: the new model no longer {verb} {', '.join(lost)} (--allow-label-loss)", flush=True)
    _publish(classifier, candidate, model)


_ERROR = "cadence: error: "


def _signal_name(number: int) -> str:
    try:
        return f"{number} ({signal.Signals(number).name})"
    except ValueError:
        return str(number)


def _run_trainer(cmd: list[str]) -> tuple[int, str | None]:
    """Run ``cadence train`` with its output passed on as it comes, except its one-line
    error, which is returned: the owner reads one line saying what went wrong and that the
    previous model stays, not two. The child's stderr is a pipe, so its progress comes in
    whole lines (no redrawn line), each decoded whole."""
    proc = subprocess.Popen(cmd, env=_python_env(), stderr=subprocess.PIPE, preexec_fn=die_with_parent())
    assert proc.stderr is not None
    error: str | None = None
    for raw in proc.stderr:
        line = raw.decode(errors="replace")
        if error is None and line.startswith(_ERROR):
            error = line[len(_ERROR):].strip()
        else:
            sys.stderr.write(line)
            sys.stderr.flush()
    return proc.wait(), error or None


def _publish(classifier: Any, candidate: Path, model: Path) -> None:
    """Make the candidate (``classifier``, loaded from it) the model the daemon runs (a new version;
    the previous kept for rollback), with its training report and curve."""
    from ..learn.report import report_paths
    from ..learn.registry import keep_reports, publish

    publish(classifier, model)
    for source, target in zip(report_paths(candidate), report_paths(model)):
        if source.is_file():
            atomic_write(target, source.read_bytes())
        else:  # never the previous model's beside the new one
            target.unlink(missing_ok=True)
    keep_reports(model)


def _read_request(state_dir: Path) -> dict[str, Any]:
    """The options `cadence retrain` left for the unit's run (taken once)."""
    path = state_dir / REQUEST
    try:
        request = json.loads(path.read_text())
        path.unlink(missing_ok=True)
    except (OSError, ValueError):
        return {}
    return request if isinstance(request, dict) else {}


def _train_with_systemd() -> None:
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    started = subprocess.run(["systemctl", "start", "--no-block", UNIT], capture_output=True, text=True)
    if started.returncode != 0:
        raise RetrainError(f"could not start {UNIT}: {started.stderr.strip() or started.returncode} "
                           "(run with sudo, or use --foreground)")
    print(f"retrain: started {UNIT}; following its log (Ctrl-C stops following, not the training)", flush=True)
    journal = subprocess.Popen(["journalctl", "-u", UNIT, "-f", "-o", "cat", "--since", since],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def pump() -> None:
        assert journal.stdout is not None
        for line in journal.stdout:
            print(line, end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        time.sleep(1.0)
        while True:
            state = subprocess.run(["systemctl", "is-active", UNIT], capture_output=True, text=True).stdout.strip()
            if state not in ("activating", "active", "reloading"):
                break
            time.sleep(1.0)
        time.sleep(0.5)  # let the last log lines arrive
    finally:
        journal.terminate()
        reader.join(2)
    result = subprocess.run(["systemctl", "show", "-p", "Result", "--value", UNIT], capture_output=True, text=True)
    if result.stdout.strip() not in ("success", ""):
        raise RetrainError(f"{UNIT} failed ({result.stdout.strip()}); see `journalctl -u {UNIT}`; "
                           "the previous model is still active")


def _print_metrics(model: Path) -> dict[str, Any] | None:
    from ..learn.report import report_paths

    report_path = report_paths(model)[0]
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        print(f"retrain: no training report at {report_path}")
        return None
    validation = report.get("validation") or report.get("validation_metrics") or {}
    accuracy = validation.get("accuracy") if isinstance(validation, dict) else None
    if accuracy is None:
        accuracy = report.get("validation_accuracy", report.get("training_accuracy"))
    labels = report.get("labels") or []
    shown = f"{accuracy:.3f}" if isinstance(accuracy, (int, float)) else "n/a"
    print(f"retrain: new model {model.name}: validation accuracy {shown}, {len(labels)} labels"
          + (f" ({', '.join(map(str, labels))})" if labels else ""))
    return report


def wait_for_switch(config: Config, digest: str, timeout: float, what: str = "sound") -> dict[str, Any]:
    """Wait until the daemon's retained model state (of ``what``) names the file with ``digest`` and return it;
    :class:`RetrainError` when it does not within ``timeout`` (naming a daemon that is offline) or no broker
    can be reached to ask."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from .topics import Topics

    topics = Topics.for_config(config)
    topic = topics.model(what)
    found: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe([(topic, 1), (topics.availability, 1)])

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        if msg.topic == topics.availability:  # said at once: waiting on a daemon that is not running is no mystery
            state = msg.payload.decode(errors="replace")
            if state == Topics.offline and not offline:
                print("retrain: the daemon is offline (its availability on MQTT); it loads the new model when it "
                      "starts — waiting for it", flush=True)
            offline[:] = [True] if state == Topics.offline else []
            return
        try:
            state = json.loads(msg.payload)
        except ValueError:
            return
        found.clear()
        found.update(state)
        if state.get("sha256") == digest:
            done.set()

    offline: list[bool] = []
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"cadence-retrain-{os.getpid()}")
    mc = config.mqtt
    if mc.username is not None:
        client.username_pw_set(mc.username, mc.resolved_password())
    if mc.tls is not None:
        client.tls_set(ca_certs=mc.tls.ca_file, certfile=mc.tls.cert_file, keyfile=mc.tls.key_file)
        client.tls_insecure_set(mc.tls.insecure)
    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(mc.host or "127.0.0.1", mc.port, keepalive=30)
    except OSError as exc:  # no confirmation is no success: the owner must know the daemon may run the old model
        raise RetrainError(f"the new model is in place, but the MQTT broker at {mc.host or '127.0.0.1'}:{mc.port} "
                           f"cannot be reached to confirm the daemon switched to it ({exc})") from None
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.loop_stop()
        client.disconnect()
    if done.is_set():
        return dict(found)
    why = "the daemon is offline;" if offline else "is `cadence run` running?"
    raise RetrainError(f"the new model is in place, but the daemon did not report switching to it within "
                       f"{timeout:g} s ({why} it loads the model when it starts)")


def retrain(
    config: Config,
    what: str | None = "sound",
    *,
    foreground: bool = False,
    wait: bool = True,
    timeout: float = 60.0,
    data: str | None = None,
    allow_label_loss: bool = False,
) -> int:
    """Retrain the ``what`` model (``sound``, ``exercise``) and wait for the daemon to switch to it.
    The unit's run (``foreground`` without ``wait``) trains what the request file asks
    (``what`` None: the request, else sound)."""
    if foreground and not wait:  # the unit's run: take what `cadence retrain` left for it
        request = _read_request(config.state_dir)
        what = request.get("what") or what or "sound"
        data = data or request.get("data")
        allow_label_loss = allow_label_loss or bool(request.get("allow_label_loss"))
    if what not in KINDS:
        raise RetrainError(f"cannot retrain {what!r}: one of {', '.join(KINDS)}")
    kind = KINDS[what]
    model = kind.model(config)
    data_dir = Path(data) if data else config.state_dir / kind.data
    if not data_dir.exists():
        raise RetrainError(f"{data_dir}: no training data ({kind.teach})")
    before = _sha256(model)
    if not foreground and systemd_available():
        atomic_write_json(config.state_dir / REQUEST,
                          {"what": what, "data": str(data_dir), "allow_label_loss": allow_label_loss})
        _train_with_systemd()
    else:
        _train_foreground(config, what, data_dir, allow_label_loss=allow_label_loss)
    after = _sha256(model)
    if after is None or after == before:
        raise RetrainError(f"training finished but {model} was not replaced; the previous model is still active")
    _print_metrics(model)
    if not wait:
        print(f"retrain: the daemon picks the new model up within seconds (see {_state_name(what)} on MQTT)")
        return 0
    print(f"retrain: waiting up to {timeout:g} s for the daemon to switch…", flush=True)
    state = wait_for_switch(config, after, timeout, what)
    print(f"retrain: the daemon switched to {state.get('name')} ({len(state.get('labels') or [])} labels)")
    return 0


def _state_name(what: str) -> str:
    from .topics import MODEL_STATES

    return f"state/{MODEL_STATES[what]}"
