"""Configuration: defaults, the example, and one-line errors naming the key."""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path

import pytest

from device.cli import main
from device.daemon.config import EXAMPLE, Config, ConfigError, load_config, parse_config  # noqa: F401


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cadence.toml"
    path.write_text(text)
    return path


def test_defaults_and_example_agree():
    example = parse_config(tomllib.loads(EXAMPLE))
    defaults = Config()
    # the example shows the defaults (device.id defaults to the hostname in both)
    assert example.model_dump() == defaults.model_dump()
    assert defaults.mqtt.embedded and defaults.mqtt.qos == 1
    assert defaults.base_topic == f"cadence/{defaults.device.id}"


def test_the_example_names_every_key():
    # docs/daemon.md: `cadence config example` prints every key, commented, with its default
    def keys(model, prefix=""):
        for name, field in model.model_fields.items():
            inner = [t for t in (field.annotation, *typing.get_args(field.annotation)) if hasattr(t, "model_fields")]
            yield from keys(inner[0], f"{prefix}{name}.") if inner else [prefix + name]

    shown, section = set(), None
    for line in EXAMPLE.splitlines():
        if m := re.match(r"#? ?\[([a-z_.]+)\]", line):
            section = m.group(1)
        elif (m := re.match(r"#? ?([a-z_]+) *=", line)) and section:
            shown.add(f"{section}.{m.group(1)}")
        shown.update(f"{section}.{k}" for k in re.findall(r"\bor ([a-z_]+) = ", line))  # "or password = …"
    assert sorted(set(keys(Config)) - shown) == []


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("[camera]\nstride = 120\n", "camera.stride", "must not exceed window"),
        ("[camera]\nsorce = 1\n", "camera.sorce", "unknown key"),
        ("[camera]\nrotation = 45\n", "camera.rotation", "45"),
        ("[camera]\nselector = \"tallest\"\n", "camera.selector", "maximum_bounding_box_area"),
        ("[mqtt]\nport = 70000\n", "mqtt.port", "mqtt.port: must be from 1 to 65535 (got 70000)"),
        ("[mqtt]\nhost = \"b\"\npassword = \"x\"\n", "mqtt.username", "required"),
        ("[mqtt]\nhost = \"b\"\nusername = \"u\"\npassword = \"x\"\npassword_env = \"P\"\n", "mqtt.password", "not both"),
        ("[mqtt]\nusername = \"u\"\n", "mqtt.host", "external broker"),
        ("[mqtt]\nhost = \"b\"\n[mqtt.tls]\ncert_file = \"/etc/hostname\"\n", "mqtt.tls.cert_file", "both or neither"),
        ("[mqtt]\nprefix = \"a/#\"\n", "mqtt.prefix", "pattern"),
        ("[sound]\nthresholds = { doorbell = 1.5 }\n", "sound.thresholds.doorbell", "must be from 0 to 1 (got 1.5)"),
        ("[sound]\nallow = [\"a\"]\nthresholds = { b = 0.5 }\n", "sound.thresholds", "not in allow"),
        ("[sound]\noverlap = 1.0\n", "sound.overlap", "must be at least 0 and less than 1 (got 1.0)"),
        ("[device]\nid = \"my pi\"\n", "device.id", "pattern"),
        ("[microphone]\ndevice = \"/nonexistent/clip.wav\"\n", "microphone.device", "does not exist"),
        ("[logging]\nlevel = \"loud\"\n", "logging.level", "loud"),
        ("[camera]\nsource = true\n", "camera.source", "enabled = false"),
        ("[microphone]\ndevice = false\n", "microphone.device", "enabled = false"),
        ("[camera]\nrest_time = nan\n", "camera.rest_time", "finite number"),
        ("[sound]\ncooldown = inf\n", "sound.cooldown", "finite number"),
        ("[nosuch]\nx = 1\n", "nosuch", "unknown key"),
        ("[snapshot]\nenabled = \"yes\"\n", "snapshot.enabled", "must be true or false"),
        ("[camera]\nenabled = 1\n", "camera.enabled", "must be true or false"),
        ("[microphone]\nloop = \"off\"\n", "microphone.loop", "must be true or false"),
        # pydantic takes true as 1: `keep_background_max = true` would have kept one clip
        ("[sound]\nkeep_background_max = true\n", "sound.keep_background_max", "must be a number (got true)"),
        ("[mqtt]\nport = true\n", "mqtt.port", "must be a number"),
        ("[sound]\ncooldown = false\n", "sound.cooldown", "must be a number (got false)"),
    ],
)
def test_errors_are_one_line_and_name_the_key(tmp_path, text, key, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert key in message and fragment in message, message


def test_toml_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"TOML syntax error.*line 2"):
        load_config(write(tmp_path, "[camera]\nfps = \n"))
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")
    assert load_config(tmp_path / "absent.toml", missing_ok=True) == Config()


def test_a_config_path_that_reads_without_end_is_one_line(tmp_path):
    # `--config /dev/zero` (or a huge file): the whole "file" was read into memory until the
    # OOM killer came (2.4 GB in 4 s here); /dev/null, an empty file, still means all defaults
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="larger than a configuration file"):
        load_config(tmp_path / "zero.toml")
    (tmp_path / "big.toml").write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than a configuration file"):
        load_config(tmp_path / "big.toml")
    assert load_config("/dev/null") == Config()


def test_password_from_environment(tmp_path, monkeypatch):
    cfg = load_config(write(tmp_path, "[mqtt]\nhost = \"b\"\nusername = \"u\"\npassword_env = \"CADENCE_TEST_PW\"\n"))
    monkeypatch.delenv("CADENCE_TEST_PW", raising=False)
    with pytest.raises(ConfigError, match="CADENCE_TEST_PW is not set"):
        cfg.mqtt.resolved_password()
    monkeypatch.setenv("CADENCE_TEST_PW", "s3cret")
    assert cfg.mqtt.resolved_password() == "s3cret"


def test_relative_model_path_is_under_state_dir(tmp_path):
    cfg = parse_config({"storage": {"state_dir": str(tmp_path)}, "sound": {"model": "models/x.model"}})
    assert cfg.sound_model_path == tmp_path / "models" / "x.model"


def test_cli_check_and_example(tmp_path, capsys):
    assert main(["config", "example"]) == 0
    example = capsys.readouterr().out
    path = write(tmp_path, example)
    assert main(["config", "check", str(path)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = write(tmp_path, "[camera]\nfps = 0\n")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "camera.fps" in err and err.startswith("cadence: error:")


def test_a_byte_order_mark_is_not_a_syntax_error(tmp_path):
    path = tmp_path / "cadence.toml"
    path.write_bytes(b"\xef\xbb\xbf[camera]\nfps = 25\n")
    assert load_config(path).camera.fps == 25.0


def test_a_folder_is_no_camera(tmp_path):
    folder = tmp_path / "clips.mp4"
    folder.mkdir()
    for source in (tmp_path, folder):
        with pytest.raises(ConfigError, match="is a folder, not a camera device or a video file"):
            load_config(write(tmp_path, f'[camera]\nsource = "{source}"\n'))


def test_snapshot_and_save_settings(tmp_path):
    from device.daemon.config import ConfigError, parse_config

    config = parse_config({})
    assert config.snapshot.enabled is False and config.storage.save_interval == 60.0  # off by default: privacy
    assert config.device.display_name == f"Cadence {config.device.id}"
    for bad in ({"snapshot": {"interval": 0}}, {"snapshot": {"quality": 100}}, {"storage": {"save_interval": 0.1}},
                {"snapshot": {"enable": True}}):
        with pytest.raises(ConfigError) as info:
            parse_config(bad)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("board, expected", [
    (b"Raspberry Pi 4 Model B Rev 1.4\0", {"profile_name": "pi4", "fps": 15.0, "downsample": 2}),
    (b"Raspberry Pi Zero 2 W Rev 1.0\0", {"profile_name": "zero2w", "fps": 15.0, "downsample": 5}),
    (b"Raspberry Pi 5 Model B Rev 1.0\0", {"profile_name": "pi5", "fps": 30.0, "downsample": 2}),
    (None, {"profile_name": "generic", "fps": 30.0, "downsample": 1}),
])
def test_the_board_profile_fills_in_what_the_file_leaves_out(tmp_path, board, expected):
    model = tmp_path / "model"
    if board is not None:
        model.write_bytes(board)
    config = load_config(write(tmp_path, "[camera]\nthreads = 2\n"))
    camera = config.camera.for_board(model)
    assert camera.threads == 2  # set in the file: the file wins
    assert (camera.fps, camera.downsample) == (expected["fps"], expected["downsample"])
    assert (camera.landmark_model is None) == (expected["profile_name"] == "generic")
    # and the example configuration leaves the board's keys to the profile
    example = parse_config(tomllib.loads(EXAMPLE)).camera.for_board(model)
    assert (example.fps, example.downsample) == (expected["fps"], expected["downsample"])
    with pytest.raises(ConfigError, match="camera.profile"):
        load_config(write(tmp_path, '[camera]\nprofile = "pi9"\n'))


def test_check_loads_the_model_files_the_daemon_would(tmp_path, capsys, monkeypatch):
    # a valid file can still name models the daemon cannot run: said before it starts
    from device.pretrained import models_dir

    state = tmp_path / "state"
    (state / "models").mkdir(parents=True)
    path = write(tmp_path, f'[storage]\nstate_dir = "{state}"\n')
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pose_detection.tflite:" in out and "embedding_model.tflite:" in out
    assert "sound model: none at" in out and "exercise model: none at" in out and "the shipped one runs" in out
    # an owner's model file that is damaged, and one of the other kind
    (state / "models" / "sound.model").write_bytes(b"PK\x03\x04 not really a model")
    (state / "models" / "exercise.model").write_bytes((models_dir() / "exercise.model").read_bytes())
    assert main(["config", "check", str(path)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("cadence: error:") and "\n" not in err
    assert "sound model" in err and str(state / "models" / "sound.model") in err and "exercise model" not in err
    assert "exercise model: " + str(state / "models" / "exercise.model") + " ok" in captured.out
    # a pinned file altered (here the landmark model a board profile would pick is fine, the detector is not)
    models = tmp_path / "models"
    models.mkdir()
    for f in models_dir().iterdir():
        if f.is_file():
            (models / f.name).symlink_to(f.resolve())
    (models / "pose_detection.tflite").unlink()
    (models / "pose_detection.tflite").write_bytes(b"\x00" * 64)
    (state / "models" / "sound.model").unlink()
    monkeypatch.setenv("CADENCE_MODELS_DIR", str(models))
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "pose_detection.tflite" in err and "SHA-256" in err and "\n" not in err


def test_check_names_a_model_it_cannot_look_at(tmp_path, capsys, monkeypatch):
    # a state folder this user may not enter, a link loop in place of a model, a pinned file
    # it may not read: each one line naming the file, not a traceback nor "not trained yet"
    import pathlib

    import device.pretrained as pretrained

    state = tmp_path / "state"
    (state / "models").mkdir(parents=True)
    path = write(tmp_path, f'[storage]\nstate_dir = "{state}"\n')
    (state / "models" / "sound.model").symlink_to("sound.model")  # a loop
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error:") and "\n" not in err
    assert str(state / "models" / "sound.model") in err and "symbolic link" in err
    (state / "models" / "sound.model").unlink()

    real_exists = pathlib.Path.exists

    def exists(self, *args, **kwargs):
        if self.parent == state / "models":  # as stat answers for a folder without x permission
            raise PermissionError(13, "Permission denied", str(self))
        return real_exists(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "exists", exists)
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error:") and "\n" not in err
    assert "Permission denied" in err and str(state / "models" / "exercise.model") in err
    monkeypatch.setattr(pathlib.Path, "exists", real_exists)

    def unreadable(file):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(pretrained, "sha256_file", unreadable)
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error:") and "\n" not in err
    assert "pose_detection.tflite cannot be read (Permission denied)" in err


def test_check_says_a_broken_model_manifest_once(tmp_path, capsys, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    (models / "manifest.json").write_text("[]")
    monkeypatch.setenv("CADENCE_MODELS_DIR", str(models))
    path = write(tmp_path, f'[storage]\nstate_dir = "{tmp_path / "state"}"\n')
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error:") and "\n" not in err
    assert err.count("not a Cadence model manifest") == 1


def test_check_without_models_is_the_configuration_only(tmp_path, capsys):
    # what the unit's ExecStartPre runs: a damaged owner's model must not keep the daemon from
    # starting (it runs the shipped model instead and reports the file)
    state = tmp_path / "state"
    (state / "models").mkdir(parents=True)
    (state / "models" / "exercise.model").write_bytes(b"damaged")
    path = write(tmp_path, f'[storage]\nstate_dir = "{state}"\n')
    assert main(["config", "check", str(path)]) == 1
    capsys.readouterr()
    assert main(["config", "check", "--no-models", str(path)]) == 0
    assert "exercise model" not in capsys.readouterr().out
