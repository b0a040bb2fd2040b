"""Sound events: gate, thresholds, smoothing, minimum duration, cool-down, allow-list."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device.audio.events import SoundEvent, SoundEventDetector, WindowClassifier, WindowPrediction
from device.audio.pipeline import sound_pipeline
from device.components import find_stage
from device.audio.settings import SoundSettings
from device.components import TemporalFeature, run


def windows(spec, *, hop=1.0, length=2.0, segment=0):
    """Stream of WindowPrediction from a compact spec: each entry is None (gated)
    or a {label: p} dict; window k spans [k*hop, k*hop+length]."""

    async def gen():
        for k, probs in enumerate(spec):
            start = k * hop
            pred = WindowPrediction(start, start + length, -30.0 if probs else -90.0, probs)
            yield TemporalFeature(pred, start + length, segment)

    return gen()


def events(detector, spec, **kw):
    return [e.value for e in run(detector(windows(spec, **kw)))]


BG = {"background": 0.9, "knock": 0.05, "bark": 0.05}
KNOCK = {"background": 0.05, "knock": 0.9, "bark": 0.05}
BARK = {"background": 0.1, "knock": 0.1, "bark": 0.8}


def test_silence_sound_silence_gives_one_event():
    det = SoundEventDetector(smoothing=1)
    out = events(det, [None] * 4 + [KNOCK] * 3 + [BG] * 4)
    assert out == [SoundEvent("knock", pytest.approx(0.9), 4.0, 8.0)]


def test_background_and_gated_windows_are_no_event():
    det = SoundEventDetector(smoothing=1)
    assert events(det, [None] * 5 + [BG] * 5 + [None]) == []


def test_smoothing_suppresses_a_one_window_blip():
    spike = [BG] * 3 + [KNOCK] + [BG] * 3
    assert events(SoundEventDetector(smoothing=1), spike) == [SoundEvent("knock", pytest.approx(0.9), 3.0, 5.0)]
    assert events(SoundEventDetector(smoothing=2), spike) == []  # (0.9 + 0.05) / 2 < 0.5
    sustained = [BG] * 3 + [KNOCK] * 3 + [BG] * 3
    (ev,) = events(SoundEventDetector(smoothing=2), sustained)
    assert ev.label == "knock" and ev.start == 4.0 and ev.confidence == pytest.approx(0.9)


def test_per_label_thresholds_and_default():
    spec = [BG, KNOCK, KNOCK, BG, BARK, BARK, BG]
    det = SoundEventDetector(smoothing=1, thresholds={"knock": 0.95}, cooldown=0)
    assert [e.label for e in events(det, spec)] == ["bark"]
    det = SoundEventDetector(smoothing=1, default_threshold=0.85, cooldown=0)
    assert [e.label for e in events(det, spec)] == ["knock"]


def test_the_reject_options_answer_is_never_an_event():
    """``_other`` ("not a taught sound") is silent like background, whatever the threshold or allow-list."""
    other = {"_other": 1.0, "knock": 0.0, "background": 0.0}
    assert events(SoundEventDetector(smoothing=1, default_threshold=0.0, cooldown=0), [other] * 6) == []
    assert events(SoundEventDetector(smoothing=1, allow=["_other", "knock"], cooldown=0), [other] * 6) == []
    # smoothed like any label: a knock is reported only where two windows in a row were accepted as one
    found = events(SoundEventDetector(smoothing=2, cooldown=0), [other, KNOCK, other, KNOCK, KNOCK, other])
    assert [(e.label, e.start, e.end) for e in found] == [("knock", 4.0, 6.0)]


def test_allow_list():
    spec = [BG, KNOCK, KNOCK, BG, BARK, BARK, BG]
    det = SoundEventDetector(smoothing=1, allow=["bark"], cooldown=0)
    assert [e.label for e in events(det, spec)] == ["bark"]


def test_minimum_duration():
    spec = [BG, KNOCK, BG, BARK, BARK, BARK, BG]
    det = SoundEventDetector(smoothing=1, min_duration=3.0, cooldown=0)
    assert [(e.label, e.start, e.end) for e in events(det, spec)] == [("bark", 3.0, 7.0)]


def test_cooldown_debounces_repeats_of_one_label():
    spec = [KNOCK, BG, KNOCK, BG, BG, BG, BG, BG, KNOCK, BG]
    # runs: [0,2], [2,4], [8,10]; with hop 1 and length 2 the gaps are 0 and 4 s
    det = SoundEventDetector(smoothing=1, cooldown=3.0)
    assert [(e.start, e.end) for e in events(det, spec)] == [(0.0, 2.0), (8.0, 10.0)]
    det = SoundEventDetector(smoothing=1, cooldown=0.0)
    assert len(events(det, spec)) == 3
    # another label is not held back by the first one's cool-down
    det = SoundEventDetector(smoothing=1, cooldown=30.0)
    assert [e.label for e in events(det, [KNOCK, BARK, KNOCK, BG])] == ["knock", "bark"]


def test_a_long_sound_is_reported_without_waiting_for_its_end():
    det = SoundEventDetector(smoothing=1, max_duration=5.0, cooldown=0.0)
    out = events(det, [KNOCK] * 12)
    assert out[0] == SoundEvent("knock", pytest.approx(0.9), 0.0, 5.0)
    assert len(out) >= 2 and all(e.label == "knock" for e in out)
    # with a long cool-down a continuing sound is reported once per cool-down
    det = SoundEventDetector(smoothing=1, max_duration=5.0, cooldown=60.0)
    assert len(events(det, [KNOCK] * 12)) == 1
    assert [e.end for e in events(det, [KNOCK] * 80)] == [5.0, 65.0]
    # the default cool-down (2 s) is shorter than max_duration: every max_duration (was: reported once,
    # each continuation 0 s after the previous report counted as a repeat within the cool-down)
    det = SoundEventDetector(smoothing=1, max_duration=10.0)
    assert [e.end for e in events(det, [KNOCK] * 40)] == [10.0, 20.0, 30.0, 40.0]



@pytest.mark.parametrize("cooldown", [0.0, 2.0])
def test_the_tail_of_a_long_sound_is_not_another_event(cooldown):
    # a sound a little longer than max_duration is one sound: reported once it has lasted max_duration,
    # not again when it stops 2 s later (was: a second event for its 10–12 s tail, after the end of
    # the stream, of a segment, or when the room went quiet)
    quiet = {"background": 0.9, "knock": 0.05}
    for after in ([], [quiet] * 3):
        det = SoundEventDetector(smoothing=1, max_duration=10.0, cooldown=cooldown)
        assert [(e.start, e.end) for e in events(det, [KNOCK] * 11 + after)] == [(0.0, 10.0)]
        det = SoundEventDetector(smoothing=1, max_duration=10.0, cooldown=cooldown)
        assert [e.end for e in events(det, [KNOCK] * 25 + after)] == [10.0, 20.0]

def test_segments_do_not_mix_and_each_starts_in_silence():
    async def two(first, second):
        async for item in windows(first, segment="a"):
            yield item
        async for item in windows(second, segment="b"):
            yield item

    out = run(SoundEventDetector(smoothing=2, cooldown=60)(two([KNOCK] * 3, [KNOCK] * 3)))
    # the first window of each segment is smoothed with "nothing" before it: (0.9 + 0) / 2 < 0.5
    assert [(e.segment, e.value.start) for e in out] == [("a", 1.0), ("b", 1.0)]
    # a knock at the end of segment a does not lend its probability to the start of b
    out = run(SoundEventDetector(smoothing=2, cooldown=0)(two([BG, KNOCK], [KNOCK, BG])))
    assert out == []


class CountingModel:
    """A real decision rule (louder than -40 dBFS is a knock) that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, feature):
        self.calls += 1
        loud = feature.rms_db > -40
        return {"knock": 0.9, "background": 0.1} if loud else {"knock": 0.1, "background": 0.9}


def test_volume_gate_skips_inference_on_silence(feature_print):
    from device.audio.featureprint import AudioFeaturePrint

    rng = np.random.default_rng(3)
    rate = 16000
    silence = (1e-5 * rng.standard_normal(6 * rate)).astype(np.float32)  # about -100 dBFS
    tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(3 * rate) / rate)).astype(np.float32)  # -23 dBFS
    signal = np.concatenate([silence, tone, silence])

    async def chunks():
        for i in range(0, len(signal), 1600):
            yield TemporalFeature(signal[i : i + 1600], i / rate, "constructed")

    fp = AudioFeaturePrint(window_duration=1.0, overlap_factor=0.5)
    model = CountingModel()
    gate = WindowClassifier(model, min_volume_db=-60.0)
    preds = [p.value for p in run((fp | gate)(chunks()))]
    gated = [p for p in preds if p.probabilities is None]
    assert len(preds) == gate.classified + gate.gated and model.calls == gate.classified
    assert gate.gated == len(gated) >= 18  # the silent windows were never classified
    assert all(p.end <= 6.0 + 1e-6 or p.start >= 9.0 - 1e-6 for p in gated)
    assert all(math.isfinite(p.rms_db) for p in preds)
    pipeline = fp | WindowClassifier(model, min_volume_db=-60.0) | SoundEventDetector(smoothing=1, cooldown=0)
    (ev,) = [e.value for e in run(pipeline(chunks()))]
    assert ev.label == "knock" and 5.0 <= ev.start <= 6.0 and 9.0 <= ev.end <= 10.0


def test_bad_settings_are_refused():
    for kw in ({"default_threshold": 1.5}, {"thresholds": {"x": -0.1}}, {"smoothing": 0}, {"cooldown": -1}):
        with pytest.raises(ValueError):
            SoundEventDetector(**kw)


def test_real_clip_between_silences_is_one_event(dev_split, trained_model, feature_print):
    """A held-out crying-baby clip with quiet room noise before and after: the
    trained model and the detector report it once, at the right time, and the
    quiet windows never reach the classifier."""
    from device.audio.sources import load_audio

    model, _ = trained_model
    path = next(p for p, label, _ in dev_split["test"] if label == "crying_baby")
    clip = load_audio(path)
    rate = 16000
    quiet = (1e-4 * np.random.default_rng(5).standard_normal(6 * rate)).astype(np.float32)  # about -80 dBFS
    signal = np.concatenate([quiet, clip, quiet])

    async def chunks():
        for i in range(0, len(signal), 1600):
            yield TemporalFeature(signal[i : i + 1600], i / rate, "room")

    pipeline = sound_pipeline(SoundSettings(min_volume_db=-70.0), model, feature_print=feature_print)
    found = [e.value for e in run(pipeline(chunks()))]
    clip_end = 6.0 + len(clip) / rate
    assert [e.label for e in found if e.label == "crying_baby"] == ["crying_baby"], found
    assert found[0].label == "crying_baby", found
    assert 6.0 - 3.0 <= found[0].start <= 6.0 + 1.5 and clip_end - 1.5 <= found[0].end <= clip_end + 3.0
    assert found[0].confidence >= 0.5
    # Known limitation (docs/audio.md): the one window that holds the last
    # moment of the cry and then near-silence looks like a single impact to a
    # model trained on whole clips, so it may add one impact event there, and
    # nowhere else (never in the quiet before the clip or well after it).
    for extra in found[1:]:
        assert extra.label != "background" and clip_end - 3.0 < extra.start < clip_end, found
    assert len(found) <= 2, found
    gate = find_stage(pipeline, WindowClassifier)
    assert gate.gated >= 4 and gate.classified >= 3
