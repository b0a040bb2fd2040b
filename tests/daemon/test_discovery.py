"""Home Assistant discovery payloads: keys, unique and predictable ids, device blocks,
what each entity reads and sends — as announced over a real mosquitto, for two devices.
(What a real Home Assistant makes of them: scripts/check_homeassistant.py, not in CI.)"""

from __future__ import annotations

import json
import re

from device.daemon.commands import parse_command
from device.daemon.config import parse_config
from device.daemon.discovery import discovery_messages, event_types, exercise_names
from device.daemon.publisher import Publisher
from device.daemon.topics import Topics
from device.learn.labels import labels_problem


def config(tmp_path, port: int = 1883, device: str = "testpi", **sections):
    data = {"device": {"id": device}, "storage": {"state_dir": str(tmp_path)},
            "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min": 1, "reconnect_max": 1}}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return parse_config(data)


def announced(cfg, labels):
    return dict(discovery_messages(cfg, labels, Topics.for_config(cfg)))


def test_every_entity_has_a_unique_predictable_id_on_old_and_new_home_assistant(tmp_path):
    cfg = config(tmp_path, device="Kitchen-Pi")
    messages = {t: m for t, m in announced(cfg, ["knock", "bell"]).items() if m}
    assert len(messages) >= 15
    for topic, payload in messages.items():
        _, component, node, key, _ = topic.split("/")
        assert node == "cadence_Kitchen-Pi"
        assert payload["unique_id"] == f"cadence_Kitchen-Pi_{key}"
        # HA < 2025.10 reads object_id, 2025.10+ default_entity_id (and then ignores object_id quietly)
        assert payload["object_id"] == f"cadence_kitchen_pi_{key}"
        assert payload["default_entity_id"] == f"{component}.cadence_kitchen_pi_{key}"
        assert payload["availability_topic"] == "cadence/Kitchen-Pi/availability"
        assert (payload["payload_available"], payload["payload_not_available"]) == ("online", "offline")
        assert payload["device"] == messages[next(iter(messages))]["device"]
    device = next(iter(messages.values()))["device"]
    assert device["identifiers"] == ["cadence_Kitchen-Pi"] and device["name"] == "Cadence Kitchen-Pi"
    assert len({m["unique_id"] for m in messages.values()}) == len(messages)
    assert "event.cadence_kitchen_pi_sound" in {m["default_entity_id"] for m in messages.values()}
    assert parse_config({"device": {"id": "x", "name": "Kitchen"}}).device.display_name == "Kitchen"


def test_two_devices_share_nothing(tmp_path):
    first, second = announced(config(tmp_path, device="gym"), ["knock"]), announced(config(tmp_path, device="kitchen-pi"), ["knock"])
    assert not set(first) & set(second)
    ids = lambda ms, key: {m[key] for m in ms.values() if m}  # noqa: E731
    for key in ("unique_id", "default_entity_id", "object_id"):
        assert not ids(first, key) & ids(second, key)
    names = lambda ms: {m["device"]["name"] for m in ms.values() if m}  # noqa: E731
    assert names(first) == {"Cadence gym"} and names(second) == {"Cadence kitchen-pi"}


def test_what_the_entities_read_and_send(tmp_path):
    cfg = config(tmp_path, snapshot={"enabled": True})
    m = announced(cfg, ["knock"])
    d = "homeassistant"
    reps = m[f"{d}/sensor/cadence_testpi/reps/config"]
    assert reps["state_class"] == "total_increasing" and reps["state_topic"] == "cadence/testpi/state/count"
    assert "value_json.count" in reps["value_template"]
    assert m[f"{d}/sensor/cadence_testpi/rate/config"]["unit_of_measurement"] == "rep/min"
    for key, field in (("fps", "fps"), ("cpu", "cpu_percent"), ("memory", "rss_mb"), ("frames_dropped", "frames_dropped"),
                       ("mqtt_dropped", "mqtt_dropped"), ("uptime", "uptime")):
        sensor = m[f"{d}/sensor/cadence_testpi/{key}/config"]
        assert sensor["state_topic"] == "cadence/testpi/stats" and f"value_json.{field}" in sensor["value_template"]
        assert sensor["entity_category"] == "diagnostic"
    for pipeline in ("vision", "audio"):
        problem = m[f"{d}/binary_sensor/cadence_testpi/{pipeline}_problem/config"]
        assert problem["device_class"] == "problem" and problem["state_topic"] == "cadence/testpi/state/pipelines"
        assert f"value_json.{pipeline} is defined" in problem["value_template"]  # no template warning when absent
        status = m[f"{d}/sensor/cadence_testpi/{pipeline}_status/config"]
        assert status["entity_category"] == "diagnostic"
    error = m[f"{d}/sensor/cadence_testpi/last_error/config"]
    assert error["state_topic"] == "cadence/testpi/state/error" and "[:255]" in error["value_template"]
    # buttons send what the command parser accepts (an empty payload runs nothing)
    for key, command in (("reset_count", "reset_count"), ("reload", "reload"), ("take_snapshot", "snapshot")):
        button = m[f"{d}/button/cadence_testpi/{key}/config"]
        assert button["command_topic"] == f"cadence/testpi/cmd/{command}"
        parse_command(command, button["payload_press"].encode())
    image = m[f"{d}/image/cadence_testpi/snapshot/config"]
    assert image["image_topic"] == "cadence/testpi/state/snapshot" and image["content_type"] == "image/jpeg"


def test_entities_that_do_not_apply_are_removed(tmp_path):
    cfg = config(tmp_path, camera={"enabled": False})  # snapshots are off by default
    m = announced(cfg, [])
    d = "homeassistant"
    for topic in (f"{d}/event/cadence_testpi/sound/config",  # no labels yet
                  f"{d}/image/cadence_testpi/snapshot/config", f"{d}/button/cadence_testpi/take_snapshot/config",
                  f"{d}/binary_sensor/cadence_testpi/vision_problem/config", f"{d}/sensor/cadence_testpi/vision_status/config",
                  f"{d}/sensor/cadence_testpi/background_kept/config"):  # [sound] keep_background is off
        assert m[topic] == {}, topic
    assert m[f"{d}/binary_sensor/cadence_testpi/audio_problem/config"]
    # with the owner's consent to keep background clips, their count is a diagnostic sensor
    kept = announced(config(tmp_path, sound={"keep_background": True}), [])[f"{d}/sensor/cadence_testpi/background_kept/config"]
    assert kept["state_topic"] == "cadence/testpi/stats" and "value_json.audio_background_kept" in kept["value_template"]
    assert kept["entity_category"] == "diagnostic" and kept["state_class"] == "total_increasing"


def test_event_types_never_background_and_within_the_allow_list(tmp_path):
    labels = ["background", "crying_baby", "doorbell", "hammering", "doorbell"]
    assert event_types(labels, config(tmp_path).sound) == ["crying_baby", "doorbell", "hammering"]
    allowed = config(tmp_path, sound={"allow": ["doorbell", "smoke_alarm"]})
    assert event_types(labels, allowed.sound) == ["doorbell"]
    m = announced(allowed, labels)
    assert m["homeassistant/event/cadence_testpi/sound/config"]["event_types"] == ["doorbell"]
    assert announced(allowed, ["background", "hammering"])["homeassistant/event/cadence_testpi/sound/config"] == {}


def test_two_devices_announce_over_a_real_broker(mosquitto, recorder_factory, tmp_path):
    rec = recorder_factory(mosquitto.port, ["homeassistant/#"])
    publishers = []
    try:
        for device in ("gym", "kitchen-pi"):
            publisher = Publisher(labels=lambda: ["background", "knock"])
            publisher.start(config(tmp_path / device, port=mosquitto.port, device=device))
            assert publisher.link.wait_connected(10)
            publishers.append(publisher)
        expected = {topic for device in ("gym", "kitchen-pi")
                    for topic, payload in announced(config(tmp_path, device=device), ["knock"]).items()}
        rec.wait_for(lambda: expected <= {t for t, _, _ in rec.messages}, what="both devices' discovery")
        payloads = {t: json.loads(p) if p else {} for t, p, _ in rec.messages}
        unique = [p["unique_id"] for p in payloads.values() if p]
        assert len(unique) == len(set(unique))
        assert payloads["homeassistant/event/cadence_gym/sound/config"]["event_types"] == ["knock"]
        assert {p["device"]["name"] for p in payloads.values() if p} == {"Cadence gym", "Cadence kitchen-pi"}
        # retained: Home Assistant starting later still finds both devices
        late = recorder_factory(mosquitto.port, ["homeassistant/+/cadence_kitchen-pi/+/config"])
        late.wait_for(lambda: len({t for t, _, r in late.messages if r}) >= 15, what="retained discovery")
    finally:
        for publisher in publishers:
            publisher.stop()


# Home Assistant's rule for discovery topics (homeassistant/components/mqtt/discovery.py, TOPIC_MATCHER):
# node and object ids of [a-zA-Z0-9_-] only; HA ignores a config topic outside it, so its entity never appears
HA_DISCOVERY_TOPIC = re.compile(r"homeassistant/\w+/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config")


def test_exercises_named_in_any_script_get_sensors_home_assistant_accepts(tmp_path):
    # a label may hold letters of any script (device/learn/labels.py); its count sensor must still be announced
    # on a topic Home Assistant reads, with an ASCII entity id, one sensor per exercise
    cfg = config(tmp_path)
    exercises = ["Liegestütze", "приседания", "俯卧撑", "push_up"]
    assert labels_problem(exercises) is None
    messages = dict(discovery_messages(cfg, [], Topics.for_config(cfg), exercises=exercises))
    for topic, payload in messages.items():
        assert HA_DISCOVERY_TOPIC.fullmatch(topic), topic
        if payload:
            assert payload["object_id"].isascii() and payload["default_entity_id"].isascii(), payload["default_entity_id"]
    keys = [t.split("/")[3] for t in messages if t.split("/")[3].startswith("reps_")]
    assert len(keys) == len(set(keys)) == 4
    assert {"reps_liegestutze", "reps_push_up"} <= set(keys)  # accents dropped; ASCII names as before
    assert labels_problem(["Müller", "Muller"])  # the same sensor: refused as one label set


# Home Assistant's own rule (homeassistant/core.py VALID_ENTITY_ID): no leading or trailing _ in either part
HA_ENTITY_ID = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")


def test_labels_with_punctuation_give_valid_entity_ids(tmp_path):
    cfg = config(tmp_path)
    exercises = ["curl (left)", "curl (right)", "(wide) push-up", "sit-up + twist", "Clean.",
                 "C++", "step  up"]
    assert labels_problem(exercises) is None
    messages = dict(discovery_messages(cfg, [], Topics.for_config(cfg), exercises=exercises))
    ids = [p["default_entity_id"] for p in messages.values() if p]
    assert ids and all(HA_ENTITY_ID.fullmatch(i) for i in ids), [i for i in ids if not HA_ENTITY_ID.fullmatch(i)]
    keys = {t.split("/")[3] for t, p in messages.items() if p and t.split("/")[3].startswith("reps_")}
    assert {"reps_curl_left", "reps_curl_right", "reps_wide_push_up", "reps_sit_up_twist", "reps_clean", "reps_c",
            "reps_step_up"} == keys
    # the sensors announced under the keys of before (until 2026-12-08) are removed, once the key differs
    removed = {t.split("/")[3] for t, p in messages.items() if not p}
    assert {"reps_curl__left_", "reps_curl__right_", "reps__wide__push_up", "reps_sit_up___twist", "reps_clean_",
            "reps_c__", "reps_step__up"} <= removed
    assert not removed & keys and "reps_push_up" not in removed
    # a label with no letter or digit would be a sensor with no name; two that differ in separators are one
    assert "no letter or digit" in labels_problem(["squat", "+"])
    # …but a model trained before that rule still loads: its "+" gets a valid id from its code points
    legacy = dict(discovery_messages(cfg, [], Topics.for_config(cfg), exercises=["+"]))
    assert "sensor.cadence_testpi_reps_u002b" in [p["default_entity_id"] for p in legacy.values() if p]
    assert "same sensor id" in labels_problem(["step up", "step  up"])


def test_the_exercise_sensors(tmp_path):
    cfg = config(tmp_path)
    exercises = exercise_names(cfg, ["unknown", "squat", "push_up", "none", "push_up"])
    assert exercises == ["push_up", "squat"]  # no sensor for what is no exercise
    m = dict(discovery_messages(cfg, ["knock"], Topics.for_config(cfg), exercises=exercises, retired=["star_jump"]))
    d = "homeassistant/sensor/cadence_testpi"
    current = m[f"{d}/exercise/config"]
    assert current["state_topic"] == current["json_attributes_topic"] == "cadence/testpi/state/count"
    assert "value_json.exercise" in current["value_template"] and "exercise_confidence" in current["json_attributes_template"]
    assert current["default_entity_id"] == "sensor.cadence_testpi_exercise" and "entity_category" not in current
    model = m[f"{d}/exercise_model/config"]
    assert model["state_topic"] == "cadence/testpi/state/exercise_model" and model["entity_category"] == "diagnostic"
    push_up = m[f"{d}/reps_push_up/config"]
    assert push_up["state_topic"] == "cadence/testpi/state/count" and push_up["state_class"] == "total_increasing"
    assert push_up["value_template"] == '{{ value_json.totals["push_up"] | default(0) }}'
    assert push_up["unit_of_measurement"] == "reps" and push_up["name"] == "Push up repetitions"
    assert (push_up["unique_id"], push_up["object_id"], push_up["default_entity_id"]) == (
        "cadence_testpi_reps_push_up", "cadence_testpi_reps_push_up", "sensor.cadence_testpi_reps_push_up")
    assert push_up["device"] == m[f"{d}/reps/config"]["device"]
    assert m[f"{d}/reps_star_jump/config"] == {}  # an exercise the model no longer knows: removed
    assert f"{d}/reps_unknown/config" not in m
    # the recogniser off (or no camera): no exercise entities
    for off in (config(tmp_path, camera={"enabled": False}), config(tmp_path, camera={"recognize_exercise": False})):
        assert exercise_names(off, ["push_up"]) == []
        m = dict(discovery_messages(off, [], Topics.for_config(off), exercises=[], retired=["push_up"]))
        assert m[f"{d}/exercise/config"] == m[f"{d}/exercise_model/config"] == m[f"{d}/reps_push_up/config"] == {}


def test_a_new_exercise_model_changes_the_count_sensors_over_a_real_broker(mosquitto, recorder_factory, tmp_path):
    rec = recorder_factory(mosquitto.port, ["homeassistant/sensor/cadence_gym/#"])
    known = ["push_up", "squat", "unknown"]
    publisher = Publisher(exercises=lambda: known)
    publisher.start(config(tmp_path, port=mosquitto.port, device="gym"))
    try:
        assert publisher.link.wait_connected(10)
        d = "homeassistant/sensor/cadence_gym"
        rec.wait_for(lambda: rec.json(f"{d}/reps_push_up/config") and rec.json(f"{d}/reps_squat/config"),
                     what="count sensors")
        known[:] = ["push_up", "star_jump", "unknown"]  # the owner's model: squat gone, star_jump new
        publisher.refresh_discovery()
        rec.wait_for(lambda: rec.json(f"{d}/reps_star_jump/config"), what="the new exercise's sensor")
        rec.wait_for(lambda: rec.on(f"{d}/reps_squat/config")[-1:] == [b""], what="squat's sensor removed")
        assert rec.on(f"{d}/reps_push_up/config")[-1] != b""
        assert not rec.on(f"{d}/reps_unknown/config")
    finally:
        publisher.stop()
