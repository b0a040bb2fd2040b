"""Home Assistant MQTT discovery: the device appears in HA with no YAML.

One HA device per Cadence device, with entities:

- ``sensor`` repetitions (``state_class: total_increasing``) from ``state/count``
- ``sensor`` set number and ``sensor`` rate (repetitions per minute)
- ``event`` sounds, whose ``event_types`` are the active model's labels
- ``sensor`` active sound model (diagnostic)

Every entity's availability is the ``availability`` topic, whose ``offline``
is the Last Will, so HA greys the device out when it dies. The payloads are
published retained on each connect and again when HA announces
``homeassistant/status`` = ``online``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import __version__
from .config import Config
from .topics import Topics


def _node(device_id: str) -> str:
    return "cadence_" + "".join(c if c.isalnum() or c in "_-" else "_" for c in device_id)


def discovery_messages(config: Config, labels: Sequence[str] | None, topics: Topics) -> list[tuple[str, dict[str, Any]]]:
    """``[(config topic, payload)]`` for every entity of this device, reading the device's ``topics``.

    With no sound labels (no model yet) the event entity is removed (empty
    retained payload), since HA requires at least one event type.
    """
    node = _node(config.device.id)
    slug = "".join(c if c.isalnum() else "_" for c in node.lower())  # entity ids: a-z, 0-9, _
    prefix = topics.discovery_prefix
    device = {
        "identifiers": [node],
        "name": config.device.name,
        "manufacturer": "Cadence",
        "model": "Cadence appliance",
        "sw_version": __version__,
    }
    common = {
        "availability_topic": topics.availability,
        "payload_available": topics.online,
        "payload_not_available": topics.offline,
        "device": device,
        "qos": 1,
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
        (
            "sensor",
            "reps",
            {
                "name": "Repetitions",
                "state_topic": topics.state("count"),
                "value_template": "{{ value_json.count }}",
                "json_attributes_topic": topics.state("count"),
                "state_class": "total_increasing",
                "unit_of_measurement": "reps",
                "suggested_display_precision": 1,
                "icon": "mdi:counter",
            },
        ),
        (
            "sensor",
            "set",
            {
                "name": "Set",
                "state_topic": topics.state("count"),
                "value_template": "{{ value_json.set }}",
                "icon": "mdi:format-list-numbered",
            },
        ),
        (
            "sensor",
            "rate",
            {
                "name": "Rate",
                "state_topic": topics.state("count"),
                "value_template": "{{ value_json.rate }}",
                "state_class": "measurement",
                "unit_of_measurement": "rep/min",
                "suggested_display_precision": 1,
                "icon": "mdi:speedometer",
            },
        ),
        (
            "sensor",
            "sound_model",
            {
                "name": "Sound model",
                "state_topic": topics.state("model"),
                "value_template": "{{ value_json.name }}",
                "json_attributes_topic": topics.state("model"),
                "entity_category": "diagnostic",
                "icon": "mdi:waveform",
            },
        ),
    ]
    messages: list[tuple[str, dict[str, Any]]] = []
    for component, key, payload in entities:
        # default_entity_id replaced object_id in HA 2025.10 (object_id stops working in 2026.4)
        full = {**payload, **common, "unique_id": f"{node}_{key}", "default_entity_id": f"{component}.{slug}_{key}"}
        messages.append((f"{prefix}/{component}/{node}/{key}/config", full))
    event_topic = f"{prefix}/event/{node}/sound/config"
    if labels:
        messages.append(
            (
                event_topic,
                {
                    "name": "Sound",
                    "state_topic": topics.sound,
                    "event_types": sorted(set(labels)),
                    "icon": "mdi:ear-hearing",
                    **common,
                    "unique_id": f"{node}_sound",
                    "default_entity_id": f"event.{slug}_sound",
                },
            )
        )
    else:
        messages.append((event_topic, {}))
    return messages
