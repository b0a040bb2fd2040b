"""The supervisor keeps what the owner relies on (real broker, real asyncio, stand-in
pipelines): the day's count over restarts, power cuts and midnight; commands that
are answered and coalesced; a half-saved config refused on reload; a prompt stop."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading

from daemon_helpers import until
from device.daemon.ledger import RepUpdate
from device.daemon.supervisor import Supervisor, _hint
from test_supervisor import Controlled, config_for, from_file, json_model_loader, running, write_model


def state_file(tmp_path) -> dict:
    try:
        return json.loads((tmp_path / "daemon-state.json").read_text())
    except (OSError, ValueError):
        return {}


def saving_daemon(mosquitto, tmp_path):
    """(the config saving every second, a stand-in vision pipeline, a supervisor running it)."""
    cfg = config_for(mosquitto.port, tmp_path, storage={"save_interval": 1}, camera={"rest_time": 60})
    vision = Controlled()
    return cfg, vision, Supervisor(cfg, factories={"vision": vision}, model_loader=json_model_loader)


async def test_the_days_count_survives_a_restart_and_a_power_cut(mosquitto, recorder_factory, tmp_path):
    rec = recorder_factory(mosquitto.port, ["cadence/sup/#"])
    cfg, vision, sup = saving_daemon(mosquitto, tmp_path)
    async with running(sup):
        await vision.queue.put(RepUpdate(5.0, 1, 5.0, 30.0))
        await vision.queue.put(RepUpdate(7.5, 2, 2.5, 30.0))
        # counting goes on: the count is saved within save_interval, without a stop
        saved = await until(lambda: state_file(tmp_path).get("count", {}).get("count") == 7.5 and state_file(tmp_path),
                            what="periodic save")
        assert saved["day"] == rec.json("cadence/sup/state/count")[-1]["day"] and saved["resting"] is False
        power_cut = tmp_path / "at-the-power-cut.json"
        shutil.copy(tmp_path / "daemon-state.json", power_cut)  # what a power cut leaves behind
    shutil.copy(power_cut, tmp_path / "daemon-state.json")
    vision = Controlled()
    sup = Supervisor(cfg, factories={"vision": vision}, model_loader=json_model_loader)
    n = len(rec.json("cadence/sup/state/count"))
    async with running(sup):
        # the day's count and its open set are back at start, before anything is counted
        first = await until(lambda: rec.json("cadence/sup/state/count")[n:], what="restored count", recorder=rec)
        assert (first[0]["count"], first[0]["set"], first[0]["set_count"]) == (7.5, 2, 2.5)
        await vision.queue.put(RepUpdate(1.0, 1, 1.0, 30.0))  # a fresh counter: the set goes on
        reps = await until(lambda: rec.json("cadence/sup/reps")[-1:] if rec.json("cadence/sup/reps")[-1]["count"] == 8.5
                           else None, what="counting on", recorder=rec)
        assert (reps[0]["set"], reps[0]["set_count"]) == (2, 3.5)
        # a reset still resets, and is saved at once
        rec.publish("cadence/sup/cmd/reset_count", '{"request_id": "r1"}')
        answer = await until(lambda: rec.json("cadence/sup/result"), what="reset answered", recorder=rec)
        assert answer[-1]["command"] == "reset_count" and answer[-1]["ok"] and answer[-1]["request_ids"] == ["r1"]
        await until(lambda: state_file(tmp_path).get("count", {}).get("count") == 0.0, what="reset saved")


async def test_what_was_counted_after_the_last_save_comes_back_from_the_broker(mosquitto, recorder_factory, tmp_path):
    # a kill -9 or a power cut between two saves lost what was counted since the last one: the day's count
    # stepped back (7.5 -> 5), which Home Assistant's daily statistics read as a new meter. The broker's
    # retained state/count still has it: added back once, at the first connection
    rec = recorder_factory(mosquitto.port, ["cadence/sup/#"])
    cfg, vision, sup = saving_daemon(mosquitto, tmp_path)
    async with running(sup):
        await vision.queue.put(RepUpdate(5.0, 1, 5.0, 30.0))
        await until(lambda: state_file(tmp_path).get("count", {}).get("count") == 5.0, what="saved at 5")
        power_cut = tmp_path / "at-the-power-cut.json"
        shutil.copy(tmp_path / "daemon-state.json", power_cut)  # the last save before the cut
        await vision.queue.put(RepUpdate(7.5, 2, 2.5, 30.0))
        await until(lambda: rec.json("cadence/sup/state/count")[-1]["count"] == 7.5, what="7.5 published", recorder=rec)
    shutil.copy(power_cut, tmp_path / "daemon-state.json")
    vision = Controlled()
    sup = Supervisor(cfg, factories={"vision": vision}, model_loader=json_model_loader)
    n = len(rec.json("cadence/sup/state/count"))
    async with running(sup):
        back = await until(lambda: [s for s in rec.json("cadence/sup/state/count")[n:] if s["count"] == 7.5],
                           what="the published count back", recorder=rec)
        assert back[0]["set"] == 2
        await vision.queue.put(RepUpdate(1.0, 1, 1.0, 30.0))
        await until(lambda: rec.json("cadence/sup/reps")[-1]["count"] == 8.5, what="counting on from it", recorder=rec)
        await until(lambda: state_file(tmp_path).get("count", {}).get("count") == 8.5, what="saved")
        assert all(s["count"] >= 5.0 for s in rec.json("cadence/sup/state/count")[n:])


async def test_the_count_starts_again_at_midnight(mosquitto, recorder_factory, tmp_path):
    day = ["2026-11-30"]
    rec = recorder_factory(mosquitto.port, ["cadence/sup/#"])
    vision = Controlled()
    sup = Supervisor(config_for(mosquitto.port, tmp_path), factories={"vision": vision},
                     model_loader=json_model_loader, today=lambda: day[0])
    async with running(sup):
        await vision.queue.put(RepUpdate(6.0, 1, 6.0))
        await until(lambda: rec.json("cadence/sup/reps") and rec.json("cadence/sup/reps")[-1]["count"] == 6.0,
                    what="counted", recorder=rec)
        day[0] = "2026-12-01"
        await vision.queue.put(RepUpdate(8.0, 1, 8.0))
        reps = await until(lambda: rec.json("cadence/sup/reps")[-1]["day"] == "2026-12-01" and rec.json("cadence/sup/reps"),
                           what="the new day", recorder=rec)
        assert reps[-1]["count"] == 2.0 and reps[-1]["totals"] == {"all": 2.0}
        assert any(s["count"] == 0.0 and s["day"] == "2026-12-01" for s in rec.json("cadence/sup/state/count"))
        await until(lambda: state_file(tmp_path).get("day") == "2026-12-01", what="the new day saved")


async def test_a_burst_of_reloads_is_coalesced_and_every_one_answered(mosquitto, recorder_factory, tmp_path):
    (tmp_path / "models").mkdir()
    write_model(tmp_path / "models" / "sound.json", ["knock"])
    loads = []

    def counting_loader(path):
        loads.append(path)
        return json_model_loader(path)

    sup = Supervisor(config_for(mosquitto.port, tmp_path), factories={}, model_loader=counting_loader)
    rec = recorder_factory(mosquitto.port, ["cadence/sup/#"])
    async with running(sup):
        await until(lambda: loads, what="first load")
        before = len(loads)
        for i in range(300):
            rec.client.publish("cadence/sup/cmd/reload", json.dumps({"what": "models", "request_id": f"r{i}"}), qos=1)
        answers = await until(lambda: sum(a["requests"] for a in rec.json("cadence/sup/result")) == 300
                              and rec.json("cadence/sup/result"), timeout=30, what="all answered", recorder=rec)
        assert {r for a in answers for r in a["request_ids"]} == {f"r{i}" for i in range(300)}
        assert all(a["command"] == "reload" and a["ok"] and a["model"].startswith("sound.json@") for a in answers)
        assert len(loads) - before == len(answers) < 300 / 10  # a handful of loads, not 300
        # a cleared retained command (an empty message) runs nothing
        n = len(rec.json("cadence/sup/result"))
        rec.publish("cadence/sup/cmd/reload", b"", retain=True)
        rec.publish("cadence/sup/cmd/snapshot", "{}")  # something that is answered, to wait on
        await until(lambda: len(rec.json("cadence/sup/result")) > n, what="snapshot answered", recorder=rec)
        later = rec.json("cadence/sup/result")[n:]
        assert [a["command"] for a in later] == ["snapshot"] and not later[0]["ok"]
        assert "snapshots are off" in later[0]["message"]


async def test_a_half_saved_config_is_refused_on_reload(mosquitto, recorder_factory, tmp_path):
    video, sound = tmp_path / "clip.mp4", tmp_path / "room.wav"
    video.write_bytes(b"not really a video")
    sound.write_bytes(b"not really a sound")
    sup, vision, audio = from_file(tmp_path, mosquitto.port, f'[camera]\nsource = "{video}"\n[microphone]\ndevice = "{sound}"\n')
    path = tmp_path / "cadence.toml"
    full = path.read_text()
    rec = recorder_factory(mosquitto.port, ["cadence/sup/#"])
    async with running(sup):
        running_config = sup.config
        for broken, fragment in (("", "the file is empty"),
                                 (full[: full.index("[microphone]")], "[microphone] device is gone")):  # cut short
            path.write_text(broken)
            ok, message, _ = await sup.reload(models=False)
            assert not ok and fragment in message and "keeping the running configuration" in message
            assert "\n" not in message
            assert sup.config == running_config and sup.pipelines.running() == {"vision", "audio"}
            assert vision.starts == audio.starts == 1  # nothing restarted
        error = await until(lambda: rec.json("cadence/sup/error"), what="error", recorder=rec)
        assert "keeping the running configuration" in error[-1]["error"]
        # a source written explicitly is applied
        path.write_text(full.replace(f'device = "{sound}"', "enabled = false"))
        ok, message, _ = await sup.reload(models=False)
        assert ok and sup.pipelines.running() == {"vision"}


def test_the_hint_for_a_file_source_does_not_suggest_a_file(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    from device.daemon.config import parse_config

    as_file = parse_config({"camera": {"source": str(video)}})
    assert "set [camera] source" not in _hint("vision", as_file) and str(video) in _hint("vision", as_file)
    assert "to use a file instead" in _hint("vision", parse_config({}))


async def test_a_stop_while_the_model_loads_is_prompt(mosquitto, tmp_path):
    (tmp_path / "models").mkdir()
    write_model(tmp_path / "models" / "sound.json", ["knock"])
    entered, release = threading.Event(), threading.Event()
    threads = []

    def slow_loader(path):
        threads.append(threading.current_thread())
        entered.set()
        release.wait(120)  # a model that takes minutes to load
        return json_model_loader(path)

    sup = Supervisor(config_for(mosquitto.port, tmp_path), factories={}, model_loader=slow_loader)
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: entered.is_set(), what="the load started")
        sup.request_stop()
        await asyncio.wait_for(task, 60)  # returns although the load goes on (before: it waited for it)
        assert not release.is_set()
        assert (tmp_path / "daemon-state.json").exists()  # a clean stop all the same
        # and the process can exit: the load runs in a daemon thread, not in the executor asyncio.run joins
        assert threads[0].daemon
    finally:
        release.set()


async def test_a_set_ended_by_another_exercise_is_saved_at_once(mosquitto, recorder_factory, tmp_path):
    rec = recorder_factory(mosquitto.port, ["cadence/sup/#"])
    vision = Controlled()
    sup = Supervisor(config_for(mosquitto.port, tmp_path, storage={"save_interval": 3600}), factories={"vision": vision},
                     model_loader=json_model_loader)
    async with running(sup):
        await vision.queue.put(RepUpdate(4.0, 1, 4.0, 30.0, exercise="push_up", exercise_confidence=0.9))
        await until(lambda: rec.json("cadence/sup/reps"), what="reps", recorder=rec)
        await until(lambda: state_file(tmp_path).get("count", {}).get("count") == 4.0, what="first save")
        # no pause, but jumping jacks now: the counter ends the set, and it is saved at once (not in an hour)
        await vision.queue.put(RepUpdate(5.0, 2, 1.0, 30.0, exercise="jumping_jack", exercise_confidence=0.8))
        reps = await until(lambda: [r for r in rec.json("cadence/sup/reps") if r["set"] == 2], what="set 2", recorder=rec)
        assert reps[0]["exercise"] == "jumping_jack" and reps[0]["totals"] == {"all": 5.0, "push_up": 4.0,
                                                                              "jumping_jack": 1.0}
        saved = await until(lambda: state_file(tmp_path).get("count", {}).get("set") == 2 and state_file(tmp_path),
                            timeout=60, what="the set saved at once")
        assert saved["count"]["totals"] == {"push_up": 4.0, "jumping_jack": 1.0}
