"""Home Assistant MQTT discovery: the device appears in HA with no YAML.

One HA device per Cadence device (named ``Cadence <id>`` unless
``device.name`` says otherwise), with entities:

- ``sensor`` repetitions today (``state_class: total_increasing``), set number
  and rate, from ``state/count``; with the exercise recogniser on (``[camera]
  recognize_exercise``), the current exercise and one repetitions-today sensor
  per exercise the active exercise model knows (``totals`` of ``state/count``;
  those of exercises a new model no longer knows are removed)
- ``event`` sounds, whose ``event_types`` are the labels the device can report:
  the active model's, without background labels, within ``sound.allow``
- ``button`` reset count, reload models, and (with ``[snapshot] enabled``) take snapshot
- ``image`` snapshot (with ``[snapshot] enabled``): the camera's view, skeleton drawn
- diagnostics: the sound model, the exercise model; fps, CPU, memory, dropped frames and MQTT
  messages, uptime, and (with ``[sound] keep_background``) the background clips kept
  (from ``stats``); per enabled pipeline (camera, microphone) its
  status and a ``problem`` binary sensor (not delivering, failing, or a file that
  ended); the last error

Entity ids are ``<component>.cadence_<device id>_<key>`` on every HA release:
``default_entity_id`` is what HA 2025.10 and later read, ``object_id`` what
earlier releases read (HA drops keys it does not know from discovery payloads,
and from 2025.10 ``object_id`` beside ``default_entity_id`` raises no
deprecation warning; 2026.4 ignores it). Entities that do not apply (a disabled
pipeline, no labels, snapshots off) get an empty retained config, which removes
them. Every entity's availability is the ``availability`` topic, whose
``offline`` is the Last Will.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from .. import __version__
from ..audio.events import DEFAULT_BACKGROUND
from ..audio.settings import SoundSettings
from ..learn.labels import label_key, label_key_before
from ..pose.sets import NOT_AN_EXERCISE
from .config import Config
from .topics import Topics

# the pipelines Home Assistant shows, with the device each stands for
PIPELINES = {"vision": ("camera", "Camera"), "audio": ("microphone", "Microphone")}

Entity = tuple[str, str, dict[str, Any] | None]  # (component, key, payload or None: remove)


def node_id(device_id: str) -> str:
    """The device's node id in discovery topics and unique ids (``cadence_<id>``)."""
    return "cadence_" + "".join(c if c.isalnum() or c in "_-" else "_" for c in device_id)


def event_types(labels: Iterable[str] | None, sound: SoundSettings) -> list[str]:
    """The labels a sound event can carry: the model's, less background, within the allow-list."""
    types = set(labels or ()) - set(DEFAULT_BACKGROUND)
    if sound.allow is not None:
        types &= set(sound.allow)
    return sorted(types)


def exercise_names(config: Config, labels: Iterable[str] | None) -> list[str]:
    """The exercises that get a count sensor: the exercise model's labels that are
    exercises (not ``unknown``/``none``); none while the recogniser does not run."""
    if not (config.camera.enabled and config.camera.recognize_exercise):
        return []
    return sorted(set(labels or ()) - set(NOT_AN_EXERCISE))


def exercise_key(label: str) -> str:
    """The entity key of an exercise's count sensor (``reps_push_up``; a label of a model trained before
    labels needed a letter or digit, ``+``, by its code points: ``reps_u002b``)."""
    return "reps_" + (label_key(label) or "".join(f"u{ord(c):04x}" for c in label))


def _exercise_entities(config: Config, topics: Topics, exercises: Sequence[str], retired: Sequence[str]) -> list[Entity]:
    """The current exercise, the exercise model, and a count per exercise (the retired ones removed)."""
    count, model = topics.state("count"), topics.model("exercise")
    on = config.camera.enabled and config.camera.recognize_exercise
    entities: list[Entity] = [
        ("sensor", "exercise", {
            "name": "Exercise", "state_topic": count, "value_template": "{{ value_json.exercise or 'none' }}",
            "json_attributes_topic": count,
            "json_attributes_template": '{{ {"confidence": value_json.exercise_confidence} | tojson }}',
            "icon": "mdi:weight-lifter"} if on else None),
        ("sensor", "exercise_model", {
            "name": "Exercise model", "state_topic": model, "value_template": "{{ value_json.name }}",
            "json_attributes_topic": model, "entity_category": "diagnostic", "icon": "mdi:human-handsup"}
            if on else None),
    ]
    keys = {exercise_key(label): label for label in exercises}
    # gone: retired exercises' sensors, and those announced under a label's key of before (`curl (left)`
    # was `reps_curl__left_`, an entity id Home Assistant cannot hold)
    before = {"reps_" + label_key_before(label) for label in [*exercises, *retired]}
    for key in sorted(({exercise_key(label) for label in retired} | before) - set(keys)):
        entities.append(("sensor", key, None))
    for key, label in keys.items():
        entities.append(("sensor", key, {
            "name": f"{label.replace('_', ' ').capitalize()} repetitions", "state_topic": count,
            "value_template": f"{{{{ value_json.totals[{json.dumps(label)}] | default(0) }}}}",
            "state_class": "total_increasing", "unit_of_measurement": "reps", "suggested_display_precision": 1,
            "icon": "mdi:counter"}))
    return entities


def _stat(topics: Topics, key: str, name: str, field: str, **extra: Any) -> Entity:
    """A diagnostic sensor of one ``stats`` figure."""
    return ("sensor", key, {"name": name, "state_topic": topics.stats, "value_template": f"{{{{ value_json.{field} }}}}",
                            "entity_category": "diagnostic", **extra})


def _entities(config: Config, labels: Sequence[str] | None, topics: Topics, exercises: Sequence[str],
              retired: Sequence[str]) -> list[Entity]:
    count, pipelines = topics.state("count"), topics.state("pipelines")
    snap = config.snapshot.enabled
    types = event_types(labels, config.sound)
    entities: list[Entity] = [
        ("sensor", "reps", {
            "name": "Repetitions", "state_topic": count, "value_template": "{{ value_json.count }}",
            "json_attributes_topic": count, "state_class": "total_increasing", "unit_of_measurement": "reps",
            "suggested_display_precision": 1, "icon": "mdi:counter"}),
        ("sensor", "set", {"name": "Set", "state_topic": count, "value_template": "{{ value_json.set }}",
                           "icon": "mdi:format-list-numbered"}),
        ("sensor", "rate", {
            "name": "Rate", "state_topic": count, "value_template": "{{ value_json.rate }}",
            "state_class": "measurement", "unit_of_measurement": "rep/min", "suggested_display_precision": 1,
            "icon": "mdi:speedometer"}),
        ("event", "sound", {"name": "Sound", "state_topic": topics.sound, "event_types": types,
                            "icon": "mdi:ear-hearing"} if types else None),
        ("button", "reset_count", {"name": "Reset count", "command_topic": topics.command("reset_count"),
                                   "payload_press": "{}", "icon": "mdi:counter"}),
        ("button", "reload", {"name": "Reload models", "command_topic": topics.command("reload"),
                              "payload_press": '{"what":"models"}', "entity_category": "config",
                              "icon": "mdi:reload"}),
        ("button", "take_snapshot", {"name": "Take snapshot", "command_topic": topics.command("snapshot"),
                                     "payload_press": "{}", "icon": "mdi:camera"} if snap else None),
        ("image", "snapshot", {"name": "Snapshot", "image_topic": topics.state("snapshot"),
                               "content_type": "image/jpeg"} if snap else None),
        ("sensor", "sound_model", {
            "name": "Sound model", "state_topic": topics.model("sound"), "value_template": "{{ value_json.name }}",
            "json_attributes_topic": topics.model("sound"), "entity_category": "diagnostic", "icon": "mdi:waveform"}),
        ("sensor", "last_error", {
            "name": "Last error", "state_topic": topics.state("error"),
            "value_template": "{{ value_json.error[:255] }}", "json_attributes_topic": topics.state("error"),
            "entity_category": "diagnostic", "icon": "mdi:alert-circle-outline"}),
        _stat(topics, "fps", "Frames per second", "fps", unit_of_measurement="fps", state_class="measurement",
              suggested_display_precision=1, icon="mdi:camera-timer"),
        _stat(topics, "cpu", "CPU", "cpu_percent", unit_of_measurement="%", state_class="measurement", icon="mdi:cpu-64-bit"),
        _stat(topics, "memory", "Memory", "rss_mb", unit_of_measurement="MiB", device_class="data_size",
              state_class="measurement", suggested_display_precision=0, icon="mdi:memory"),
        _stat(topics, "frames_dropped", "Frames dropped", "frames_dropped", state_class="total_increasing",
              icon="mdi:image-off-outline"),
        _stat(topics, "mqtt_dropped", "MQTT messages dropped", "mqtt_dropped", state_class="total_increasing",
              icon="mdi:email-remove-outline"),
        _stat(topics, "uptime", "Uptime", "uptime", unit_of_measurement="s", device_class="duration",
              suggested_display_precision=0),
        _stat(topics, "background_kept", "Background clips kept", "audio_background_kept",
              state_class="total_increasing", icon="mdi:content-save-outline")
        if config.microphone.enabled and config.sound.keep_background else ("sensor", "background_kept", None),
    ]
    for pipeline, (section, title) in PIPELINES.items():
        enabled = getattr(config, section).enabled
        entry = f"value_json.{pipeline}"
        entities.append(("sensor", f"{pipeline}_status", {
            "name": f"{title} status", "state_topic": pipelines, "entity_category": "diagnostic",
            "value_template": f"{{{{ {entry}.status if {entry} is defined else 'off' }}}}",
            "icon": "mdi:pipe"} if enabled else None))
        entities.append(("binary_sensor", f"{pipeline}_problem", {
            "name": f"{title} problem", "state_topic": pipelines, "device_class": "problem",
            "entity_category": "diagnostic",
            "value_template": f"{{{{ 'ON' if {entry} is defined and {entry}.problem else 'OFF' }}}}",
            "json_attributes_topic": pipelines,
            "json_attributes_template": f"{{{{ ({entry} if {entry} is defined else {{}}) | tojson }}}}"}
            if enabled else None))
    return entities + _exercise_entities(config, topics, exercises, retired)


def discovery_messages(config: Config, labels: Sequence[str] | None, topics: Topics, *,
                       exercises: Sequence[str] = (), retired: Sequence[str] = ()) -> list[tuple[str, dict[str, Any]]]:
    """``[(config topic, payload)]`` for every entity of this device, reading the device's ``topics``;
    an empty payload removes an entity that does not apply now. ``labels``: the sound model's;
    ``exercises``: those with a count sensor (:func:`exercise_names`); ``retired``: exercises
    whose count sensors were announced before and go now."""
    node = node_id(config.device.id)
    slug = label_key(node)  # entity ids: a-z, 0-9, _
    common = {
        "availability_topic": topics.availability,
        "payload_available": topics.online,
        "payload_not_available": topics.offline,
        "device": {
            "identifiers": [node],
            "name": config.device.display_name,
            "manufacturer": "Cadence",
            "model": "Cadence appliance",
            "sw_version": __version__,
        },
        "origin": {"name": "Cadence", "sw_version": __version__},
        "qos": 1,
    }
    messages: list[tuple[str, dict[str, Any]]] = []
    for component, key, payload in _entities(config, labels, topics, exercises, retired):
        topic = f"{topics.discovery_prefix}/{component}/{node}/{key}/config"
        if payload is None:
            messages.append((topic, {}))
            continue
        messages.append((topic, {
            **payload, **common, "unique_id": f"{node}_{key}",
            "object_id": f"{slug}_{key}",  # HA before 2025.10
            "default_entity_id": f"{component}.{slug}_{key}",  # HA 2025.10 and later
        }))
    return messages
