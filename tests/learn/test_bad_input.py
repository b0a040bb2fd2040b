"""Bad input to `cadence train exercise` on purpose (issue 17 rule: one clear line, exit code
not 0 where it failed, nothing already saved lost): real pose arrays from the dev set, the
real CLI."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from device.cli import main

POSES = {"squat": ["stu9_64", "stu4_64"], "pommel_horse": ["stu13_35", "stu13_37"]}


@pytest.fixture()
def pose_data(shared_data: Path, tmp_path: Path) -> Path:
    data = tmp_path / "exercise-data"
    for label, names in POSES.items():
        (data / label).mkdir(parents=True)
        for name in names:
            (data / label / f"{name}.npy").symlink_to(shared_data / "repcount-dev" / "poses" / f"{name}.npy")
    return data


def train(data: Path, out: Path, tmp_path: Path, *extra: str) -> int:
    return main(["train", "exercise", str(data), "--out", str(out), "--state-dir", str(tmp_path / "state"),
                 "--quiet", "--without-shipped", *extra])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("cadence: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_out_onto_a_file_that_is_not_a_model_keeps_that_file(pose_data: Path, tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("the only copy of my notes\n")
    assert train(pose_data, notes, tmp_path) == 0
    out = capsys.readouterr().out
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("notes.txt.") and p.is_file()
            and p.read_bytes() == b"the only copy of my notes\n"]
    assert len(kept) == 1, sorted(p.name for p in tmp_path.iterdir())
    assert kept[0].name in out  # said where it went
    from device.learn import load_classifier

    assert load_classifier(notes).labels  # the model is where --out said


def test_out_onto_something_that_is_not_a_file_is_refused_before_training(pose_data: Path, tmp_path: Path,
                                                                           capsys) -> None:
    fifo = tmp_path / "a-pipe"
    os.mkfifo(fifo)
    assert train(pose_data, fifo, tmp_path) == 1
    assert "not a regular file" in one_line_error(capsys)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still what it was
    assert not (tmp_path / "state" / "feature-cache").exists()  # refused before any work


def test_absurd_hidden_units_are_one_line(pose_data: Path, tmp_path: Path, capsys) -> None:
    assert train(pose_data, tmp_path / "e.model", tmp_path, "--classifier", "network",
                 "--hidden-units", "100000000", "--max-epochs", "1") != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "hidden" in err
    assert not (tmp_path / "e.model").exists()


def test_a_label_folder_with_a_line_break_is_refused(pose_data: Path, tmp_path: Path, capsys) -> None:
    odd = pose_data / "push\nup"
    odd.mkdir()
    (odd / "a.npy").symlink_to((pose_data / "squat" / "stu9_64.npy").resolve())
    assert train(pose_data, tmp_path / "e.model", tmp_path) == 1
    assert "not a valid name" in one_line_error(capsys)
    assert not (tmp_path / "e.model").exists()


def test_a_pose_array_without_a_body_says_so_not_sound(pose_data: Path, tmp_path: Path, capsys) -> None:
    np.save(pose_data / "squat" / "nobody.npy", np.full((300, 33, 3), np.nan, np.float32))
    np.save(pose_data / "squat" / "empty.npy", np.zeros((0, 33, 3), np.float32))
    assert train(pose_data, tmp_path / "e.model", tmp_path) == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if "nobody.npy" in line or "empty.npy" in line]
    assert len(skipped) == 2, out
    assert not any("sound" in line for line in skipped), skipped


def test_a_file_as_data_folder_names_what_exercise_training_reads(pose_data: Path, tmp_path: Path, capsys) -> None:
    assert train(pose_data / "squat" / "stu9_64.npy", tmp_path / "e.model", tmp_path) == 1
    line = one_line_error(capsys)
    assert "is not a folder" in line and ".npy" in line and ".wav" not in line


def test_a_sound_model_in_the_exercise_slot_says_to_train_an_exercise_model(tmp_path: Path, small_data: Path) -> None:
    from simple_print import SimpleFeaturePrint

    from device.daemon.pipelines import load_exercise_model
    from device.learn.dataset import load_dataset
    from device.learn.modelfile import FeaturePrintMismatchError
    from device.learn.training import Trainer, TrainingConfig

    path = Trainer(SimpleFeaturePrint(), TrainingConfig(classifier="logistic", augment_copies=0),
                   state_dir=tmp_path / "state").train(load_dataset(small_data), tmp_path / "sound.model").model_path
    with pytest.raises(FeaturePrintMismatchError) as caught:
        load_exercise_model(path)
    message = str(caught.value)
    assert "SimpleFeaturePrint" in message and "cadence train exercise" in message and "train sound" not in message


def test_an_exercise_model_in_the_sound_slot_is_named_as_one(pose_data: Path, tmp_path: Path, capsys) -> None:
    from device.daemon.pipelines import load_sound_model
    from device.learn.modelfile import FeaturePrintMismatchError

    assert train(pose_data, tmp_path / "exercise.model", tmp_path) == 0
    with pytest.raises(FeaturePrintMismatchError) as caught:
        load_sound_model(tmp_path / "exercise.model")
    message = str(caught.value)
    assert "ExerciseFeatures" in message and "cadence train sound" in message and "\n" not in message


def test_the_shipped_exercise_model_in_the_sound_slot_is_named_as_one() -> None:
    """It was built by the build script, not the trainer: it said 'trained on feature print …, retrain it'."""
    from device.daemon.pipelines import load_sound_model, shipped_exercise_model
    from device.learn.modelfile import FeaturePrintMismatchError

    with pytest.raises(FeaturePrintMismatchError) as caught:
        load_sound_model(shipped_exercise_model())
    message = str(caught.value)
    assert "ExerciseFeatures" in message and "another kind" in message and "\n" not in message


def test_a_folder_as_the_model_path_is_one_line_naming_no_other_kind(tmp_path):
    # `cadence train exercise DATA --out FOLDER` was told "e.g. FOLDER/sound.model"
    from device.learn.registry import RegistryError, check_target

    with pytest.raises(RegistryError) as info:
        check_target(tmp_path)
    message = str(info.value)
    assert "is a folder" in message and "sound.model" not in message and "\n" not in message
