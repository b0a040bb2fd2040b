"""The appliance: ``cadence run`` — camera and microphone in, MQTT out, unattended.

- :mod:`.config`     the TOML configuration, validated (pydantic, one-line errors)
- :mod:`.mqtt`       the MQTT link: availability/LWT, events, retained state, commands
- :mod:`.discovery`  Home Assistant MQTT discovery payloads
- :mod:`.broker`     the embedded default broker (local mosquitto, else amqtt)
- :mod:`.supervisor` the asyncio supervisor running the vision and audio pipelines
- :mod:`.pipelines`  the real vision/audio pipeline factories
- :mod:`.systemd`    sd_notify (READY, WATCHDOG, STATUS) without extra dependencies
- :mod:`.cli`        ``cadence run``, ``cadence config``, ``cadence retrain``
"""
