"""Every MQTT topic of one device, named in one place (the publisher, discovery
and ``cadence retrain`` all take them from here)."""

from __future__ import annotations

from .config import Config


# the retained state topic of each hot-swapped model (``state/model`` is the sound model's, as it always was)
MODEL_STATES = {"sound": "model", "exercise": "exercise_model"}


class Topics:
    """Every topic of one device (and the two payloads of its availability)."""

    online = "online"
    offline = "offline"  # also the Last Will

    def __init__(self, base: str, discovery_prefix: str = "homeassistant") -> None:
        self.base = base
        self.availability = f"{base}/availability"
        self.reps = f"{base}/reps"
        self.sound = f"{base}/sound"
        self.stats = f"{base}/stats"
        self.error = f"{base}/error"
        self.result = f"{base}/result"  # every command's answer
        self.command_prefix = f"{base}/cmd/"
        self.commands = f"{base}/cmd/#"
        self.discovery_prefix = discovery_prefix
        self.ha_status = f"{discovery_prefix}/status"  # Home Assistant's birth and will

    @classmethod
    def for_config(cls, config: Config) -> "Topics":
        return cls(config.base_topic, config.mqtt.discovery_prefix)

    def state(self, name: str) -> str:
        return f"{self.base}/state/{name}"

    def model(self, kind: str) -> str:
        """The retained state of the active model of ``kind`` (``sound``, ``exercise``)."""
        return self.state(MODEL_STATES[kind])

    def command(self, name: str) -> str:
        return f"{self.command_prefix}{name}"
