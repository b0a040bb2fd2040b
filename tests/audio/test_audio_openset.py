"""Sounds the owner never taught stay silent: the reject option, end to end on real dev clips.

A model is trained as ``cadence train sound`` trains it on background,
crying_baby and vacuum_cleaner clips; hammering clips (a kind it never
learnt) and other clips of the taught labels are judged by ``cadence
evaluate sound`` — the sound pipeline the daemon runs — with the reject
option and without it (``--no-reject``).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from device.cli import main

TAUGHT = {"background": 8, "crying_baby": 8, "vacuum_cleaner": 8}


@pytest.fixture(scope="module")
def taught(dev_data, feature_print, tmp_path_factory):
    """(model path, folder of held-out clips): never-taught hammering and unseen taught clips."""
    from device.learn import Trainer, TrainingConfig, load_dataset

    root = tmp_path_factory.mktemp("openset")
    for label, n in TAUGHT.items():
        files = sorted((dev_data / label).glob("*.flac"))
        (root / "train" / label).mkdir(parents=True)
        (root / "test" / label).mkdir(parents=True)
        for f in files[:n]:
            shutil.copy2(f, root / "train" / label / f.name)
        for f in files[n:][::4][:4]:  # later clips: other takes and recordings, never trained on
            (root / "test" / label / f.name).symlink_to(f)
    (root / "test" / "hammering").mkdir()
    for f in sorted((dev_data / "hammering").glob("*.flac"))[::3]:
        (root / "test" / "hammering" / f.name).symlink_to(f)
    # as `cadence train sound` (8 augmented copies per clip here) but without the shipped negatives: they hold
    # these very hammering clips, and this judges the reject option alone (tests/learn/test_negatives.py: the set)
    config = TrainingConfig(min_level_db=-70.0, shipped_negatives=False)
    result = Trainer(feature_print, config, state_dir=root / "state").train(load_dataset(root / "train"), root / "sound.model")
    return result.model_path, root / "test"


def _evaluate(capsys, model, folder, *extra):
    assert main(["evaluate", "sound", str(folder), "--model", str(model), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_never_taught_hammering_stays_silent_far_more_often_with_the_reject_option(taught, capsys):
    model, folder = taught
    on = _evaluate(capsys, model, folder)
    off = _evaluate(capsys, model, folder, "--no-reject")
    assert on["reject"] is True and off["reject"] is False
    hammering_on, hammering_off = on["events"]["per_label"]["hammering"], off["events"]["per_label"]["hammering"]
    assert hammering_on["taught"] is False and hammering_on["clips"] == hammering_off["clips"] == 30
    # measured 1.00 against 0.70 (docs/audio.md has the held-out figures over many splits and labels)
    assert hammering_on["silent"] >= hammering_off["silent"] + 0.2, (hammering_on, hammering_off)
    assert on["events"]["untaught_silent"] == hammering_on["silent"]
    # the taught sounds it was not trained on still mostly fire their own event
    assert on["events"]["taught_with_their_event"] >= 0.5, on["events"]
    # the reject option's answer is a silent label: never an event, never a folder's accuracy
    for row in on["events"]["per_label"].values():
        assert "_other" not in row["event_labels"]


def test_random_noise_and_tones_are_not_taught_sounds(taught, feature_print):
    """Far-off sounds (noise, tones) never become events: the classifier calls them background or the
    reject option calls them not a taught sound — which it would, whatever taught sound had been picked."""
    from device.audio.events import WindowClassifier
    from device.audio.pipeline import sound_pipeline
    from device.audio.settings import SoundSettings
    from device.components import TemporalFeature, find_stage, run
    from device.learn import load_classifier

    model = load_classifier(taught[0], feature_print=feature_print)
    rate, rng = 16000, np.random.default_rng(11)
    t = np.arange(4 * rate) / rate
    sounds = {
        "white noise": 0.05 * rng.standard_normal(len(t)),
        "1 kHz tone": 0.1 * np.sin(2 * np.pi * 1000 * t),
        "beeps": 0.2 * np.sin(2 * np.pi * 2500 * t) * (np.sin(2 * np.pi * 2 * t) > 0),
        "chord": 0.05 * sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330, 440)),
    }
    said: dict[str, list[str]] = {}
    for name, samples in sounds.items():
        windows = []
        signal = samples.astype(np.float32)

        async def chunks():
            for i in range(0, len(signal), 1600):
                yield TemporalFeature(signal[i : i + 1600], i / rate, name)

        pipeline = sound_pipeline(SoundSettings(), model, feature_print=feature_print, on_window=lambda w: windows.append(w.value))
        events = [e.value for e in run(pipeline(chunks()))]
        assert events == [], (name, events)
        labels = [w.label for w in windows]
        assert labels and all(label in ("_other", "background") for label in labels), (name, labels)
        assert find_stage(pipeline, WindowClassifier).rejected == labels.count("_other")  # what the daemon can count
        said[name] = labels
        # whichever taught sound the classifier had picked, the reject option would have refused the tonal
        # sounds (measured distances 5.4–6.7 against thresholds 1.4 and 3.9); broadband noise lies within
        # the crying-baby threshold (2.3 < 3.9: cries of several babies are a wide label), not the vacuum's
        x = model.as_matrix(list(feature_print.sample_windows(signal)))
        for sound in ("crying_baby", "vacuum_cleaner") if name != "white noise" else ("vacuum_cleaner",):
            picked = np.full(len(x), model.labels.index(sound))
            assert model.reject_option.rejects(x, picked).all(), (name, sound)
    assert "_other" in [label for labels in said.values() for label in labels], said


def test_a_saved_and_loaded_model_rejects_the_same_windows(taught, tmp_path, feature_print):
    from device.audio.sources import load_audio
    from device.learn import load_classifier

    model = load_classifier(taught[0], feature_print=feature_print)
    assert model.reject_option is not None and model.output_labels() == model.labels + ["_other"]
    clips = sorted(taught[1].glob("*/*.flac"))
    windows = [w for path in clips for w in feature_print.sample_windows(load_audio(path))]
    copy = tmp_path / "again.model"
    model.save(copy)
    again = load_classifier(copy, feature_print=feature_print)
    first, second = model.predict_open(windows), again.predict_open(windows)
    np.testing.assert_array_equal(first, second)
    rejected = first[:, -1] == 1.0
    assert 0 < rejected.sum() < len(windows)  # some windows rejected, not all
    np.testing.assert_array_equal(first[:, :-1].argmax(axis=1)[~rejected], model.predict_proba(windows).argmax(axis=1)[~rejected])
    # with the reject option off the model is the plain classifier
    np.testing.assert_array_equal(model.predict_open(windows, reject=False), model.predict_proba(windows))
    assert "_other" not in model.classify(windows[0], reject=False)


def test_classify_says_when_a_window_is_not_a_taught_sound(taught, tmp_path, capsys):
    import soundfile as sf

    model, _ = taught
    clip = tmp_path / "beeps.wav"
    t = np.arange(6 * 16000) / 16000
    sf.write(clip, (0.2 * np.sin(2 * np.pi * 2500 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32), 16000)
    assert main(["classify", str(clip), "--model", str(model), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(w["rejected"] == (w["label"] == "_other") for w in out["windows"])
    assert any(w["rejected"] for w in out["windows"]) and out["events"] == []
    assert main(["classify", str(clip), "--model", str(model)]) == 0
    text = capsys.readouterr().out
    assert "reject option on" in text and "not a taught sound" in text
    assert main(["classify", str(clip), "--model", str(model), "--no-reject", "--json"]) == 0
    assert not any(w["rejected"] for w in json.loads(capsys.readouterr().out)["windows"])
