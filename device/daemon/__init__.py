"""The appliance: ``cadence run`` — camera and microphone in, MQTT out, unattended.

- :mod:`.config`       the TOML configuration, validated (pydantic, one-line errors)
- :mod:`.pipelines`    the real vision/audio pipeline factories
- :mod:`.runner`       a pipeline's context, restarts with backoff, the set of pipelines
- :mod:`.model_holder` the sound and the exercise model, hot-swapped when their files change
- :mod:`.ledger`       the published count: monotonic over counter restarts, sets, resets
- :mod:`.telemetry`    stats figures, the watchdog's decision, the status line
- :mod:`.publisher`    the only place that knows topics and payloads
- :mod:`.commands`     the command payloads (``cmd/reset_count``, ``cmd/reload``), validated
- :mod:`.mqtt`         the MQTT transport: (re)connect, retained state, offline queue, will
- :mod:`.discovery`    Home Assistant MQTT discovery payloads
- :mod:`.broker`       the embedded default broker (local mosquitto, else amqtt)
- :mod:`.state_file`   ``daemon-state.json``: the last count and model
- :mod:`.supervisor`   the composition root: builds the pieces, signals, reload
- :mod:`.systemd`      sd_notify (READY, WATCHDOG, STATUS) without extra dependencies
- :mod:`.retrain`      ``cadence retrain sound|exercise``: train a candidate, check it, publish, await the switch
"""
