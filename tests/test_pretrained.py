"""Pinned pretrained model files: verification, clear errors, extraction from wheels."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from device import pretrained
from device.inference import InferenceError, TFLiteModel
from device.pretrained import ModelFileError

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (fd 2 is process-wide: what happens to it is seen there)."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def make_models_dir(tmp_path, content=b"model-bytes"):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "pkg-1.0-py3-none-any.whl", "w") as z:
        z.writestr("pkg/models/m.tflite", content)
    directory = tmp_path / "models"
    directory.mkdir()
    manifest = {
        "format_version": 1,
        "packages": {"pkg": {"requirement": "pkg==1.0", "wheel_prefix": "pkg-1.0-", "platform": "any",
                             "python_version": "3.11"}},
        "files": {"m.tflite": {"package": "pkg", "member": "pkg/models/m.tflite",
                               "sha256": hashlib.sha256(b"model-bytes").hexdigest()}},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory, wheels


def test_fetch_extracts_verifies_and_is_idempotent(tmp_path):
    directory, wheels = make_models_dir(tmp_path)
    logs = []
    assert pretrained.fetch(directory=directory, wheel_cache=wheels, log=logs.append) == {"m.tflite": "fetched"}
    assert (directory / "m.tflite").read_bytes() == b"model-bytes"
    assert pretrained.fetch(directory=directory, wheel_cache=wheels, log=logs.append) == {"m.tflite": "ok"}
    assert pretrained.model_path("m.tflite", directory=directory) == directory / "m.tflite"


def test_fetch_refuses_a_wheel_whose_file_does_not_match(tmp_path):
    directory, wheels = make_models_dir(tmp_path)
    with zipfile.ZipFile(wheels / "pkg-1.0-py3-none-any.whl", "w") as z:
        z.writestr("pkg/models/m.tflite", b"something else")
    with pytest.raises(ModelFileError, match="refusing it"):
        pretrained.fetch(directory=directory, wheel_cache=wheels, log=lambda m: None)
    assert not (directory / "m.tflite").exists()


def test_missing_and_tampered_files_say_how_to_fetch(tmp_path):
    directory, _ = make_models_dir(tmp_path)
    with pytest.raises(ModelFileError, match="missing; run `cadence models fetch`"):
        pretrained.model_path("m.tflite", directory=directory)
    with pytest.raises(ModelFileError, match="missing; run `cadence models fetch`"):
        pretrained.model_bytes("m.tflite", directory=directory)
    (directory / "m.tflite").write_bytes(b"tampered")
    with pytest.raises(ModelFileError, match="does not match its pinned SHA-256"):
        pretrained.model_path("m.tflite", directory=directory)
    with pytest.raises(ModelFileError, match="does not match its pinned SHA-256"):  # the bytes read are checked
        pretrained.model_bytes("m.tflite", directory=directory)
    assert pretrained.status(directory) == {"m.tflite": "mismatch"}
    (directory / "m.tflite").write_bytes(b"model-bytes")
    assert pretrained.model_bytes("m.tflite", directory=directory) == (directory / "m.tflite", b"model-bytes")
    with pytest.raises(ModelFileError, match="not a model listed"):
        pretrained.model_path("other.tflite", directory=directory)



def test_a_damaged_built_file_says_how_to_restore_it_not_to_fetch_it(tmp_path):
    # a built file (exercise.model, sound-negatives.npz …) that was damaged said "delete it and run
    # `cadence models fetch`"; fetch then refused ("it is built, not fetched"), the file already deleted
    directory, _ = make_models_dir(tmp_path)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["b.model"] = {"sha256": hashlib.sha256(b"built").hexdigest(), "built_by": "make b-model"}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    for state in ("missing", "tampered"):
        if state == "tampered":
            (directory / "b.model").write_bytes(b"tampered")
        for read in (pretrained.model_path, pretrained.model_bytes):
            with pytest.raises(ModelFileError) as info:
                read("b.model", directory=directory)
            assert "models fetch" not in str(info.value) and "make b-model" in str(info.value), info.value
            assert "built, not fetched" in str(info.value)


def test_a_file_loaded_whole_that_is_far_too_big_is_refused_without_reading_it(tmp_path):
    # a wrong or damaged file in place of the shipped negatives: one line, not a MemoryError traceback
    # (model_bytes read the file whole before checking it; a 512 MB board would run out of memory)
    import resource

    directory, _ = make_models_dir(tmp_path)
    with open(directory / "m.tflite", "wb") as handle:
        handle.truncate(pretrained.HASH_FIRST_BYTES + (512 << 20))  # sparse: costs no disk
    with open("/proc/self/status", encoding="ascii") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20), hard))  # less than the file
    try:
        with pytest.raises(ModelFileError, match="does not match its pinned SHA-256"):
            pretrained.model_bytes("m.tflite", directory=directory)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_a_folder_in_place_of_a_model_file_is_named_so(tmp_path):
    directory, _ = make_models_dir(tmp_path)
    (directory / "m.tflite").mkdir()
    for load in (pretrained.model_path, pretrained.model_bytes):
        with pytest.raises(ModelFileError, match=r"m.tflite is not a file; run `cadence models fetch`"):
            load("m.tflite", directory=directory)


@pytest.mark.parametrize("manifest", ["[]", '{"format_version": 1, "packages": {}, "files": []}',
                                      '{"format_version": 1, "packages": {}, "files": {"m.tflite": {}}}'])
def test_a_manifest_of_the_wrong_shape_is_one_error(tmp_path, manifest):
    # valid JSON, not a manifest: was an AttributeError/KeyError traceback (e.g. in `cadence config check`)
    directory, _ = make_models_dir(tmp_path)
    (directory / "m.tflite").write_bytes(b"model-bytes")
    (directory / "manifest.json").write_text(manifest)
    with pytest.raises(ModelFileError, match="not a Cadence model manifest"):
        pretrained.model_path("m.tflite", directory=directory)


def test_real_models_are_pinned_and_load():
    states = pretrained.status()
    assert set(states) >= {"pose_detection.tflite", "pose_landmark_full.tflite",
                           "melspectrogram.tflite", "embedding_model.tflite", "exercise.model"}
    assert all(s == "ok" for s in states.values()), states
    model = TFLiteModel(pretrained.model_path("pose_detection.tflite"), num_threads=1)
    assert model.input_shapes == [(1, 224, 224, 3)]
    assert sorted(model.output_shapes) == [(1, 2254, 1), (1, 2254, 12)]


def test_corrupt_tflite_gives_clear_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    data = bytearray(pretrained.model_path("embedding_model.tflite").read_bytes())
    bad.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(InferenceError, match="bad.tflite"):
        TFLiteModel(bad)
    shutil.copy(pretrained.model_path("embedding_model.tflite"), tmp_path / "ok.tflite")
    model = TFLiteModel(tmp_path / "ok.tflite")
    with pytest.raises(InferenceError, match="wants shape"):
        model.run(__import__("numpy").zeros((1, 10), "float32"))


def test_the_runtimes_delegate_note_is_kept_off_stderr_and_nothing_else_is():
    # the runtime prints a one-time INFO line from C++ when the first interpreter is built;
    # it is held back, while what other threads write meanwhile still reaches stderr
    code = (
        "import os, sys, threading\n"
        "from device import pretrained\n"
        "from device.inference import TFLiteModel\n"
        "import device.inference as inference\n"
        "original = inference.interpreter_class()\n"
        "def loud(*a, **k):\n"
        "    os.write(2, b'another thread said this\\n')\n"
        "    return original(*a, **k)\n"
        "inference.interpreter_class = lambda: loud\n"
        "print('before', file=sys.stderr, flush=True)\n"
        "for _ in range(2):\n"
        "    TFLiteModel(pretrained.model_path('pose_detection.tflite')).run("
        "        __import__('numpy').zeros((1, 224, 224, 3), 'float32'))\n"
        "print('after', file=sys.stderr, flush=True)\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert "XNNPACK" not in done.stderr
    assert done.stderr.splitlines() == ["before", "another thread said this", "another thread said this", "after"]


def test_stderr_survives_the_microphone_opening_while_a_model_loads():
    # `import sounddevice` points fd 2 at /dev/null while PortAudio starts; the daemon loads the pose
    # model meanwhile (another thread). Interleaved, the capture saved /dev/null as "the original" and
    # put it back after PortAudio had put back the real one: every later log line of the daemon was
    # lost (seen in the source-failure test). Here that interleaving is forced, where it can happen.
    code = (
        "import os, sys, threading\n"
        "from device import pretrained\n"
        "from device.audio import sources\n"
        "import device.inference as inference\n"
        "original = os.readlink('/proc/self/fd/2')\n"
        "redirected, loading = threading.Event(), threading.Event()\n"
        "real_open, real_close, devnull = os.open, os.close, []\n"
        "def noting_open(path, *a, **k):\n"
        "    fd = real_open(path, *a, **k)\n"
        "    if path == os.devnull:\n"
        "        devnull.append(fd)\n"
        "    return fd\n"
        "def slow_close(fd):\n"
        "    real_close(fd)\n"
        "    if fd in devnull and os.readlink('/proc/self/fd/2') == os.devnull and not redirected.is_set():\n"
        "        redirected.set()  # PortAudio's redirect is in place until it has started\n"
        "        loading.wait(3)  # the model load begins meanwhile (unless it has to wait for the lock)\n"
        "os.open, os.close = noting_open, slow_close\n"
        "build = inference.interpreter_class()\n"
        "def build_slowly(*a, **k):\n"
        "    loading.set()\n"
        "    mic.join()  # PortAudio puts fd 2 back while the capture is still in place\n"
        "    return build(*a, **k)\n"
        "inference.interpreter_class = lambda: build_slowly\n"
        "mic = threading.Thread(target=sources._sounddevice)\n"
        "mic.start()\n"
        "redirected.wait(60)\n"
        "inference.TFLiteModel(pretrained.model_path('pose_detection.tflite'))\n"
        "os.open, os.close = real_open, real_close\n"
        "print('fd 2 now', 'unchanged' if os.readlink('/proc/self/fd/2') == original else 'CHANGED', file=sys.stderr, flush=True)\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert "fd 2 now unchanged" in done.stderr, done.stderr[-2000:]


def test_a_model_loads_without_a_writable_temporary_folder(monkeypatch):
    # keeping the runtime's note off stderr needs a temporary file; a read-only system has none:
    # the note may show, the model must still load (was: FileNotFoundError, no model loaded)
    import tempfile

    import device.inference as inference

    def no_temporary_folder(*args, **kwargs):
        raise FileNotFoundError(2, "No usable temporary directory found")

    monkeypatch.setattr(inference, "_note_seen", False)
    monkeypatch.setattr(tempfile, "TemporaryFile", no_temporary_folder)
    model = TFLiteModel(pretrained.model_path("pose_detection.tflite"))
    assert model.input_shapes


def test_a_models_folder_named_by_the_environment_must_be_one(tmp_path, monkeypatch):
    # CADENCE_MODELS_DIR pointing at nothing (a typo) was ignored: the repository's models ran instead
    monkeypatch.setenv("CADENCE_MODELS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ModelFileError, match="CADENCE_MODELS_DIR=.*nowhere holds no manifest.json"):
        pretrained.models_dir()
    monkeypatch.delenv("CADENCE_MODELS_DIR")
    assert (pretrained.models_dir() / "manifest.json").is_file()
