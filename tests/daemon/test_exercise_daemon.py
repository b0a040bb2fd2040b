"""The exercise in the daemon, end to end on real video, real models and a real broker:
``reps`` name the exercise, a change of exercise is a new set, the day's per-exercise
totals survive a restart, and the exercise model is hot-swapped like the sound model —
a model file with other labels appears, the daemon announces it (state, Home Assistant
discovery) and the recogniser uses it; removed, the shipped model is back."""

from __future__ import annotations

import asyncio
import json

import pytest

from daemon_helpers import SHARED, until
from device.daemon.config import parse_config
from device.daemon.pipelines import load_exercise_model, shipped_exercise_model, vision_pipeline
from device.daemon.supervisor import Supervisor
from exercise_helpers import sequences, train_exercise_model
from test_supervisor import running

VIDEOS = SHARED / "videos"
PUSH_UPS, JUMPING_JACKS = VIDEOS / "pushups.mp4", VIDEOS / "jumping_jacks_12.mp4"
RENAMED = {"jumping_jack": "star_jump", "push_up": "press_up"}  # the owner's model: other labels
DISCOVERY = "homeassistant/sensor/cadence_ex"
pytestmark = pytest.mark.skipif(not (PUSH_UPS.exists() and JUMPING_JACKS.exists()),
                                reason=f"shared videos not found under {VIDEOS}")


def config(port: int, tmp_path, **sections):
    data = {
        "device": {"id": "ex"},
        "microphone": {"enabled": False},
        "exercise": {"reload_check_seconds": 0.2},
        "storage": {"state_dir": str(tmp_path)},
        "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min": 1, "reconnect_max": 1, "keepalive": 5},
    }
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return parse_config(data)


def supervisor(cfg, factory=vision_pipeline) -> Supervisor:
    return Supervisor(cfg, factories={"vision": factory}, exercise_loader=load_exercise_model,
                      shipped_exercise_model=shipped_exercise_model)


class OneAfterTheOther:
    """Push-ups, then at once jumping jacks (the clip twice): one camera run (one segment), no pause between."""

    fps = 25.0

    def __aiter__(self):
        return self._frames()

    async def _frames(self):
        from device.components import TemporalFeature
        from device.video import read_video

        i = 0
        for path in (PUSH_UPS, JUMPING_JACKS, JUMPING_JACKS):
            async for item in read_video(path):
                yield TemporalFeature(item.value, i / self.fps, "camera")
                i += 1


async def test_reps_name_the_exercise_a_change_is_a_new_set_and_totals_survive_a_restart(
        mosquitto, recorder_factory, tmp_path):
    rec = recorder_factory(mosquitto.port, ["cadence/ex/#"])
    cfg = config(mosquitto.port, tmp_path, camera={"source": str(PUSH_UPS), "realtime": False})  # every frame
    sup = supervisor(cfg, lambda ctx: vision_pipeline(ctx, source=OneAfterTheOther()))
    async with running(sup):
        model = await until(lambda: rec.json("cadence/ex/state/exercise_model"), what="exercise model", recorder=rec)
        assert model[-1]["status"] == "active" and model[-1]["shipped"] is True
        assert {"push_up", "jumping_jack"} <= set(model[-1]["labels"])
        await until(lambda: any(s.get("vision", {}).get("status") == "finished"
                                for s in rec.json("cadence/ex/state/pipelines")), timeout=600, what="video processed")
    reps = rec.json("cadence/ex/reps")
    named = [r for r in reps if r["exercise"] in ("push_up", "jumping_jack")]
    assert named and all(0.0 < r["exercise_confidence"] <= 1.0 for r in named)
    # the exercise of the open set: push-ups, then jumping jacks, never back
    order = [r["exercise"] for r in named]
    assert order[0] == "push_up" and order[-1] == "jumping_jack", order
    switch = order.index("jumping_jack")
    assert "push_up" not in order[switch:]
    # no pause between them, yet the jumping jacks are a set of their own
    assert named[switch]["set"] == named[switch - 1]["set"] + 1
    last = rec.json("cadence/ex/state/count")[-1]
    totals = last["totals"]
    # (the recogniser's evidence is that of the last 20 s: the first jumping jacks still count in the push-up set)
    assert totals["push_up"] >= 2.0 and totals["jumping_jack"] >= 3.0, totals
    assert totals["all"] == last["count"] == pytest.approx(sum(v for k, v in totals.items() if k != "all"), abs=0.01)
    # stopped and started again (the camera off): the day's totals per exercise are back
    sup = supervisor(config(mosquitto.port, tmp_path, camera={"enabled": False}))
    n = len(rec.json("cadence/ex/state/count"))
    async with running(sup):
        restored = await until(lambda: rec.json("cadence/ex/state/count")[n:], what="restored count", recorder=rec)
    assert restored[0]["totals"] == totals and restored[0]["count"] == last["count"]
    saved = json.loads((tmp_path / "daemon-state.json").read_text())
    assert saved["count"]["totals"] == {k: v for k, v in totals.items() if k != "all"}


async def test_the_exercise_model_is_hot_swapped_in_a_running_daemon(mosquitto, recorder_factory, tmp_path):
    rec = recorder_factory(mosquitto.port, ["cadence/ex/#", f"{DISCOVERY}/#"])
    cfg = config(mosquitto.port, tmp_path, camera={"source": str(JUMPING_JACKS), "loop": True, "realtime": False})
    owner = cfg.exercise_model_path
    sup = supervisor(cfg)

    def models():
        return rec.json("cadence/ex/state/exercise_model")

    def reps(exercise):
        return [r for r in rec.json("cadence/ex/reps") if r["exercise"] == exercise]

    async with running(sup):
        # no model of the owner's: the shipped one is active, announced, and recognises the jumping jacks
        shipped = await until(models, what="exercise model", recorder=rec)
        assert shipped[-1]["shipped"] is True and "jumping_jack" in shipped[-1]["labels"]
        await until(lambda: rec.json(f"{DISCOVERY}/reps_jumping_jack/config"), what="count sensor", recorder=rec)
        await until(lambda: reps("jumping_jack"), timeout=300, what="jumping jacks recognised", recorder=rec)
        # the owner's model appears (its exercises have other names)
        labels = await asyncio.to_thread(train_exercise_model, sequences(RENAMED), owner)
        assert "star_jump" in labels and "jumping_jack" not in labels
        swapped = await until(lambda: [m for m in models() if m.get("shipped") is False], what="swap", recorder=rec)
        assert swapped[0]["labels"] == labels and swapped[0]["path"] == str(owner) and swapped[0]["status"] == "active"
        # Home Assistant learns its exercises: a count for star_jump; jumping_jack's is removed
        star = await until(lambda: rec.json(f"{DISCOVERY}/reps_star_jump/config"), what="new sensor", recorder=rec)
        assert star[-1]["default_entity_id"] == "sensor.cadence_ex_reps_star_jump"
        await until(lambda: rec.on(f"{DISCOVERY}/reps_jumping_jack/config")[-1:] == [b""], what="old sensor removed",
                    recorder=rec)
        # the recogniser uses it: the jumping jacks are star jumps now — a set of their own, or (a swap
        # in a set's first 6 s, whose name rests on few windows) the same set renamed
        before = reps("jumping_jack")[-1]
        after = await until(lambda: reps("star_jump"), timeout=300, what="star jumps recognised", recorder=rec)
        assert after[0]["set"] in (before["set"], before["set"] + 1) and after[0]["timestamp"] >= before["timestamp"]
        assert not [r for r in rec.json("cadence/ex/reps") if r["timestamp"] > after[0]["timestamp"]
                    and r["exercise"] == "jumping_jack"]
        await until(lambda: rec.json("cadence/ex/state/count")[-1]["totals"].get("star_jump", 0) > 0,
                    timeout=300, what="star jumps counted", recorder=rec)
        # reload answers with both models
        rec.publish("cadence/ex/cmd/reload", '{"what": "models"}')
        answer = await until(lambda: rec.json("cadence/ex/result"), what="reload answer", recorder=rec)
        assert answer[-1]["ok"] and answer[-1]["exercise_model"] == swapped[0]["name"]
        # the owner's file removed: the shipped model is active again
        n = len(models())
        owner.unlink()
        back = await until(lambda: [m for m in models()[n:] if m.get("shipped")], what="shipped again", recorder=rec)
        assert back[0]["sha256"] == shipped[-1]["sha256"]
        await until(lambda: rec.on(f"{DISCOVERY}/reps_jumping_jack/config")[-1] != b"", what="sensor back",
                    recorder=rec)
        await until(lambda: rec.on(f"{DISCOVERY}/reps_star_jump/config")[-1:] == [b""], what="owner's sensor removed",
                    recorder=rec)
