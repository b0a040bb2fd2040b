"""Exercise classifier: held-out real data, open set, public API, teaching, the shipped file."""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from device.components import CadenceError, encode_state, load_state
from device.pose.exercise import NONE, UNKNOWN, ExerciseClassifier, classify_exercise, fit_classifier
from device.pose.exercise_data import EXERCISES, load_key_poses, load_sequences, synthetic_windows

REPO = Path(__file__).resolve().parents[2]
# a split the tests hold out: never trained on by the models these tests build
HELD_OUT_SEQUENCES = ("stu2_5", "stu3_10", "stu6_42", "stu7_30", "stu8_38", "stu10_60", "stu12_31", "stu4_64")
HELD_OUT_VIDEO_SHARE = 5  # every 5th key-pose video (by name) of each exercise


def _build_module():
    spec = importlib.util.spec_from_file_location("build_exercise_model", REPO / "scripts" / "build_exercise_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def windows(shared_data: Path) -> tuple[np.ndarray, list[str], list[str]]:
    """The build's training windows (raw features, labels, source names)."""
    return _build_module().training_windows(shared_data)


@pytest.fixture(scope="module")
def held_out_videos(shared_data: Path) -> set[str]:
    out = set()
    for ex in EXERCISES:
        names = sorted(v.name for v in load_key_poses(shared_data) if v.exercise == ex)
        out.update(names[::HELD_OUT_VIDEO_SHARE])
    return out


@pytest.fixture(scope="module")
def split_model(windows, held_out_videos) -> ExerciseClassifier:
    """The shipped method trained without the held-out split."""
    raw, labels, sources = windows
    excluded = set(HELD_OUT_SEQUENCES) | held_out_videos
    keep = np.array([s not in excluded for s in sources])
    return fit_classifier(raw[keep], [lab for lab, k in zip(labels, keep) if k])


@pytest.fixture(scope="module")
def shipped() -> ExerciseClassifier:
    from device import pretrained

    if pretrained.status().get("exercise.model") != "ok":
        pytest.skip("models/exercise.model missing or not the pinned one (make exercise-model)")
    return ExerciseClassifier.load()


def _sequences(shared_data: Path, names) -> list:
    return [s for s in load_sequences(shared_data) if s.name in names]


# -- real data the model never saw ------------------------------------------------
def test_held_out_sequences_are_recognised(split_model, shared_data: Path) -> None:
    seqs = _sequences(shared_data, HELD_OUT_SEQUENCES)
    assert len(seqs) == len(HELD_OUT_SEQUENCES)
    right = [split_model.classify_sequence(s.poses).label == s.exercise for s in seqs]
    assert sum(right) >= len(seqs) - 1, [
        (s.name, s.exercise, split_model.classify_sequence(s.poses)) for s in seqs
    ]


def test_held_out_key_pose_videos_are_recognised(split_model, windows, held_out_videos) -> None:
    raw, labels, sources = windows
    sel = np.isin(np.asarray(sources), sorted(held_out_videos))
    logp, moving, dist = split_model.scores(raw[sel])
    predicted = [split_model.labels[i] for i in np.argmax(logp, axis=1)]
    truth = np.asarray(labels)[sel]
    assert np.mean(np.asarray(predicted) == truth) >= 0.7  # single synthetic windows (CV: 0.84)


def test_the_live_tracker_labels_a_held_out_set(split_model, shared_data: Path) -> None:
    seq = _sequences(shared_data, ["stu7_30"])[0]  # jumping jacks
    tracker = split_model.tracker()
    labels = [tracker.push(seq.poses[a:b]).label for a, b in split_model.features.window_bounds(len(seq.poses))]
    assert labels[-1] == "jumping_jack"
    assert labels.count("jumping_jack") >= 0.8 * len(labels)


def test_a_pause_that_ends_a_set_forgets_the_exercise(split_model, shared_data: Path) -> None:
    """Push-ups, a still pause, then jumping jacks (both held out): after a pause of the counter's
    rest time the tracker starts afresh — exactly as a new tracker would — so the jumping jacks are
    not named by the push-ups' evidence; a shorter pause keeps it (one set's breather)."""
    from device.pose.counter import REST_TIME

    seqs = {s.name: s.poses for s in _sequences(shared_data, ["stu6_42", "stu7_30"])}
    push_ups, jacks = seqs["stu6_42"], seqs["stu7_30"]
    last = push_ups[np.isfinite(push_ups).all(axis=(1, 2))][-1]
    rng = np.random.default_rng(0)
    for pause, forgets in ((REST_TIME + 2, True), (REST_TIME / 2, False)):
        frames = int(pause * 30)
        poses = np.concatenate([push_ups, last[None] + rng.normal(0, 0.002, (frames, *last.shape)), jacks])
        bounds = list(split_model.features.window_bounds(len(poses)))
        live, stale = split_model.tracker(), split_model.tracker(forget_after=float("inf"))
        labels = [live.push(poses[a:b], b / 30).label for a, b in bounds]
        stale_labels = [stale.push(poses[a:b], b / 30).label for a, b in bounds]
        start = len(push_ups) + frames  # the first frame of the jumping jacks
        first = next(i for i, (a, b) in enumerate(bounds) if b > start and labels[i] != NONE)
        fresh = split_model.tracker()
        fresh_labels = [fresh.push(poses[a:b], b / 30).label for a, b in bounds[first:]]
        assert (fresh_labels == labels[first:]) is forgets, pause
        if forgets:
            assert labels[-1] == "jumping_jack"
            assert labels[first:].count("jumping_jack") >= 0.7 * len(labels[first:])
            # the old evidence would have named the first 12 windows of jumping jacks push-ups
            assert stale_labels[first : first + 12] == ["push_up"] * 12
            assert labels[first : first + 12].count("jumping_jack") >= 4
        else:
            assert labels[first:] == stale_labels[first:]


def test_the_set_after_a_pause_is_one_set_of_the_new_exercise(split_model, shared_data: Path) -> None:
    """Through the counting pipeline: push-ups, 10 s still, jumping jacks (15, held out) — the
    jumping jacks are one set named jumping_jack, not a push-up set and a jumping-jack one."""
    from device.components import from_iterable, run
    from device.pose.pipeline import counting_pipeline
    from device.pose.posefile import frames_of
    from device.pose.settings import PoseSettings

    seqs = {s.name: s.poses for s in _sequences(shared_data, ["stu6_42", "stu7_30"])}
    last = seqs["stu6_42"][np.isfinite(seqs["stu6_42"]).all(axis=(1, 2))][-1]

    def final(poses: np.ndarray):
        pipeline = counting_pipeline(PoseSettings(recognize_exercise=True), 30.0, exercise_model=split_model)
        return [item.value for item in run(pipeline(from_iterable(frames_of(poses), rate=30.0)))][-1]

    alone = final(seqs["stu6_42"])
    # 8.5 s: just past the counter's rest time (8 s), where a pause measured between moving windows (which
    # still move for a window's length after the person stops) did not forget
    for seconds in (8.5, 10.0):
        pause = last[None] + np.random.default_rng(0).normal(0, 0.002, (int(seconds * 30), *last.shape))
        both = final(np.concatenate([seqs["stu6_42"], pause, seqs["stu7_30"]]))
        assert both.set_exercises[: len(alone.sets)] == alone.set_exercises, seconds
        assert len(both.sets) == len(alone.sets) + 1, (seconds, both.sets, both.set_exercises)
        assert both.set_exercises[-1] == "jumping_jack" and abs(both.sets[-1] - 15) <= 1, seconds


# -- open set ------------------------------------------------------------------------
def test_random_landmarks_are_unknown(split_model) -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert split_model.classify_sequence(rng.uniform(0, 1, (150, 33, 3))).label == UNKNOWN


def test_a_still_person_is_none_or_unknown(split_model, shared_data: Path) -> None:
    """Held key poses with pose-estimator jitter: never an exercise, mostly ``none``
    (``unknown`` where per-axis normalisation magnifies the jitter of a thin body)."""
    rng = np.random.default_rng(1)
    videos = [v for v in load_key_poses(shared_data) if len(v.start)][::20]
    labels = []
    for video in videos:
        pose = video.start[0]
        size = np.ptp(pose[:, :2], axis=0).max()
        still = pose[None] + rng.normal(0, 0.002 * size, (120, 33, 3))
        labels.append(split_model.classify_sequence(still).label)
        assert labels[-1] in (NONE, UNKNOWN), video.name
    assert labels.count(NONE) >= 0.8 * len(labels)
    frozen = _sequences(shared_data, ["stu7_30"])[0].poses[100]
    assert split_model.classify_window(np.repeat(frozen[None], 90, axis=0)).label == NONE


def test_nobody_in_view_is_none(split_model) -> None:
    assert split_model.classify_sequence(np.full((120, 33, 4), np.nan)).label == NONE
    tracker = split_model.tracker()
    assert tracker.push([None] * 90).label == NONE


# -- teaching a new exercise ---------------------------------------------------------
def test_a_new_exercise_is_learnt_from_three_recordings(windows, shared_data: Path) -> None:
    """Pommel horse removed entirely, then taught from three of its sequences cut
    after 10 repetitions; the fourth is recognised, and the others still are."""
    from device.pose.exercise_data import sequence_windows
    from device.pose.exercise_features import ExerciseFeatures

    raw, labels, sources = windows
    pommel = sorted(s.name for s in load_sequences(shared_data) if s.exercise == "pommel_horse")
    teach, test = pommel[:3], pommel[3]
    keep = np.array([lab != "pommel_horse" and s not in HELD_OUT_SEQUENCES for lab, s in zip(labels, sources)])
    xs, ys = [raw[keep]], [lab for lab, k in zip(labels, keep) if k]
    feats = ExerciseFeatures()
    for seq in _sequences(shared_data, teach):
        x, ends, _ = sequence_windows(feats, seq)
        few = x[ends <= seq.cycle_ends[9] + 1]
        xs.append(few)
        ys += ["pommel_horse"] * len(few)
    model = fit_classifier(np.concatenate(xs), ys)
    new = _sequences(shared_data, [test])[0]
    assert model.classify_sequence(new.poses).label == "pommel_horse"
    others = _sequences(shared_data, HELD_OUT_SEQUENCES)
    right = [model.classify_sequence(s.poses).label == s.exercise for s in others if s.exercise != "pommel_horse"]
    assert sum(right) >= len(right) - 1


# -- the public API with the shipped model --------------------------------------------
def test_classify_exercise_gives_the_same_answer_in_both_conventions(shipped, shared_data: Path) -> None:
    seq = _sequences(shared_data, ["stu7_30"])[0].poses[:300]
    rng = np.random.default_rng(2)
    image = seq.copy()
    image[..., :2] = seq[..., :2] * rng.uniform(0.3, 0.5, (len(seq), 1, 2)) + rng.uniform(0, 0.4, (len(seq), 1, 2))
    label = classify_exercise(seq)
    assert label == classify_exercise(image) == classify_exercise(image[..., :2]) == "jumping_jack"


def test_classify_exercise_on_key_poses_in_pixels(shipped, shared_data: Path) -> None:
    """Synthetic repetitions between one video's own key poses, in pixels and image-normalised."""
    rng = np.random.default_rng(3)
    video = next(v for v in load_key_poses(shared_data) if v.exercise == "squat" and len(v.start) and len(v.middle))
    window = next(synthetic_windows(video, 1, rng, frames=240))
    normalised = window.copy()
    normalised[..., :2] /= np.array([1920.0, 1080.0])
    assert classify_exercise(window) == classify_exercise(normalised)
    assert classify_exercise(window) in (*EXERCISES, UNKNOWN)


def test_classify_exercise_open_set_and_errors(shipped) -> None:
    rng = np.random.default_rng(4)
    assert classify_exercise(rng.uniform(0, 1, (200, 33, 2))) == UNKNOWN
    assert classify_exercise(np.full((60, 33, 3), np.nan)) == UNKNOWN
    with pytest.raises(CadenceError, match="shape"):
        classify_exercise(np.zeros((100, 25, 2)))
    with pytest.raises(ValueError, match="fps"):
        classify_exercise(np.zeros((100, 33, 2)), fps=0)


def test_fast_recordings_are_taken_at_the_window_rate(shipped, shared_data: Path) -> None:
    seq = _sequences(shared_data, ["stu7_30"])[0].poses[:300]
    doubled = np.repeat(seq, 2, axis=0)  # the same motion filmed at 60 fps
    assert classify_exercise(doubled, fps=60.0) == classify_exercise(seq)


# -- the shipped file -------------------------------------------------------------------
def test_shipped_model_is_small_pinned_and_safe(shipped) -> None:
    from device.pretrained import model_path

    path = model_path("exercise.model")
    assert path.stat().st_size < 512 * 1024
    meta, arrays = load_state(path)  # JSON + npz, no pickle
    assert all(a.dtype != object for a in arrays.values())
    assert shipped.exercises == sorted(EXERCISES) and set(shipped.labels) <= {*EXERCISES, UNKNOWN}
    assert meta["metadata"]["feature_print_fingerprint"] == shipped.features.fingerprint()
    assert {"min_motion", "min_confidence", "max_distance", "centres", "spreads"} <= set(meta["metadata"]["open_set"])


def test_fetch_names_the_build_for_a_missing_built_model(tmp_path: Path) -> None:
    import json

    from device import pretrained

    manifest = json.loads((REPO / "models" / "manifest.json").read_text())
    manifest["files"] = {"exercise.model": manifest["files"]["exercise.model"]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(pretrained.ModelFileError, match="built, not fetched.*make exercise-model"):
        pretrained.fetch(directory=tmp_path, log=lambda *_: None)
    assert pretrained.status(tmp_path) == {"exercise.model": "missing"}


def test_recognizer_stage_runs_beside_the_counter(split_model, shared_data: Path) -> None:
    import asyncio

    from device.components import SlidingWindow, collect, from_iterable
    from device.pose.exercise import ExerciseRecognizer

    poses = _sequences(shared_data, ["stu7_30"])[0].poses
    frames = [None if not np.isfinite(f).all() else f for f in poses]
    stage = ExerciseRecognizer(split_model)

    async def go() -> list:
        return await collect((SlidingWindow(90, 15, emit_partial=True) | stage)(from_iterable(frames, rate=30.0)))

    out = asyncio.run(go())
    assert len(out) == len(list(split_model.features.window_bounds(len(frames))))
    guess = out[-1].value.guess
    assert guess.label == "jumping_jack" and 0.0 < guess.confidence <= 1.0
    assert guess.to_dict()["exercise"] == "jumping_jack"
    # the windows themselves pass on unchanged (the counter after it sees the same poses)
    assert all(a is b for a, b in zip(out[1].value, frames[15:105])) and len(out[1].value) == 90
