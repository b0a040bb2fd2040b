"""The daemon's configuration: one TOML file, validated before anything starts.

Every section is a pydantic model with ``extra="forbid"`` so a typo is an
error, not a silently ignored setting. The pipeline sections extend the
pipelines' own settings models — ``[camera]`` is :class:`PoseSettings` plus
where the frames come from, ``[sound]`` is :class:`SoundSettings` plus the
model file — so every default lives in one place. :func:`load_config` turns any problem
(unreadable file, TOML syntax, wrong type, out of range, contradictory
settings) into one :class:`ConfigError` line that names the key, e.g.
``cadence.toml: camera.stride: must not exceed camera.window (120 > 90)``.
"""

from __future__ import annotations

import logging
import os
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from ..audio.settings import SoundSettings
from ..boards import DEVICE_TREE_MODEL, PROFILE_NAMES, resolve_profile
from ..boards import landmark_model as board_landmark_model
from ..audio.sources import AUDIO_EXTENSIONS
from ..components import CadenceError
from ..components.settings import Settings, describe, one_line
from ..pose.settings import PoseSettings
from ..storage import default_state_dir
from ..video.file import VIDEO_SUFFIXES

DEFAULT_CONFIG_PATH = Path("/etc/cadence/cadence.toml")
MAX_CONFIG_BYTES = 1 << 20  # the example is ~6 KB; more is not a configuration file (/dev/zero reads without end)


log = logging.getLogger("cadence.daemon")


class ConfigError(CadenceError):
    """The configuration file is missing, unreadable or invalid (one line)."""


def _hostname() -> str:
    name = socket.gethostname().split(".")[0].lower() or "cadence"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


_Section = Settings


class DeviceConfig(_Section):
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] = Field(
        default_factory=_hostname
    )
    # shown in Home Assistant; default "Cadence <id>", so two devices never share a name
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None

    @property
    def display_name(self) -> str:
        return self.name or f"Cadence {self.id}"


class CameraConfig(PoseSettings):
    """The repetition pipeline's settings, and where its frames come from."""

    enabled: bool = True
    # a V4L2 index (0), a device path (/dev/video0), a stream URL (rtsp://…),
    # "picamera2", or a video file (played as if it were a camera)
    source: int | str = 0
    resolution: tuple[Annotated[int, Field(ge=16, le=4096)], Annotated[int, Field(ge=16, le=4096)]] = (640, 480)
    fps: Annotated[float, Field(gt=0, le=120)] = 30.0
    rotation: Literal[0, 90, 180, 270] = 0
    # the board this runs on: picks threads, resolution, fps, frame skipping and the landmark
    # model so the pose pipeline keeps up (device/boards.py); values set here win over it
    profile: Literal[PROFILE_NAMES] = "auto"  # type: ignore[valid-type]
    # video-file sources only: start again at the end, and whether to pace
    # frames at the file's frame rate (like a camera) or as fast as inference goes
    loop: bool = False
    realtime: bool = True

    @field_validator("source", mode="before")
    @classmethod
    def _not_a_switch(cls, value: Any) -> Any:
        if isinstance(value, bool):  # TOML true is no camera index
            raise ValueError("must be a camera index, a device path, a stream URL, \"picamera2\" or a video file "
                             "(to switch the camera off: enabled = false)")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError("a camera index must be ≥ 0")
            return value
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _source_file(self) -> "CameraConfig":
        if isinstance(self.source, str) and "://" not in self.source and Path(self.source).is_dir():
            raise ValueError(f"source: {self.source} is a folder, not a camera device or a video file")
        if self.is_file and self.enabled and not Path(self.source).is_file():  # type: ignore[arg-type]
            raise ValueError(f"source: video file {self.source} does not exist")
        return self

    def pose_settings(self) -> PoseSettings:
        """The pipeline's part of this section."""
        return PoseSettings(**{name: getattr(self, name) for name in PoseSettings.model_fields})

    def for_board(self, model_path: Path | str = DEVICE_TREE_MODEL) -> "CameraConfig":
        """This section with the board profile's values filled in where the file
        sets none (``profile = "auto"`` reads the board from the device tree)."""
        profile = resolve_profile(self.profile, model_path=model_path)
        update = {k: v for k, v in profile.overrides().items() if k not in self.model_fields_set}
        if "landmark_model" not in self.model_fields_set:
            name, note = board_landmark_model(profile)
            if note:
                log.warning("%s", note)
            update["landmark_model"] = name
        return self.model_copy(update=update)

    @property
    def is_file(self) -> bool:
        return isinstance(self.source, str) and Path(self.source).suffix.lower() in VIDEO_SUFFIXES and "://" not in self.source


class MicrophoneConfig(_Section):
    enabled: bool = True

    @field_validator("device", mode="before")
    @classmethod
    def _not_a_switch(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a device name or index, or an audio file (to switch it off: enabled = false)")
        return value

    # a PortAudio device name or index (None: the system default), or an
    # audio file (played as if it were a microphone)
    device: int | str | None = None
    gain: Annotated[float, Field(gt=0, le=100)] = 1.0
    loop: bool = False
    realtime: bool = True

    @model_validator(mode="after")
    def _cross(self) -> "MicrophoneConfig":
        if self.is_file and self.enabled and not Path(self.device).is_file():  # type: ignore[arg-type]
            raise ValueError(f"device: audio file {self.device} does not exist")
        return self

    @property
    def is_file(self) -> bool:
        return isinstance(self.device, str) and Path(self.device).suffix.lower() in AUDIO_EXTENSIONS


class ModelFileConfig(_Section):
    """A hot-swapped model file: where it is (relative paths are under
    ``storage.state_dir``) and how often the daemon looks whether it changed."""

    model: str
    reload_check_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0


class SoundConfig(SoundSettings, ModelFileConfig):
    """The sound pipeline's settings, the model it runs, and whether the room's own
    background is kept for the next ``cadence retrain sound`` (``device/daemon/background.py``)."""

    model: str = "models/sound.model"
    # the owner's consent: keep short clips of the room's background (quiet, no sound event) in the
    # training data's background/ folder — recordings of the room, so off unless switched on
    keep_background: bool = False
    keep_background_max: Annotated[int, Field(ge=1, le=10_000)] = 50  # kept clips; beyond, the oldest kept one goes
    keep_background_every: Annotated[float, Field(ge=60, le=86_400)] = 600.0  # at most one clip per this many seconds

    def sound_settings(self) -> SoundSettings:
        """The pipeline's part of this section."""
        return SoundSettings(**{name: getattr(self, name) for name in SoundSettings.model_fields})


class ExerciseConfig(ModelFileConfig):
    """The owner's exercise model (``cadence retrain exercise`` writes it); while
    the file does not exist the shipped model is active."""

    model: str = "models/exercise.model"


class TLSConfig(_Section):
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False  # skip hostname verification (self-signed test brokers only)

    @model_validator(mode="after")
    def _cross(self) -> "TLSConfig":
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mqtt.tls.cert_file and mqtt.tls.key_file: give both or neither")
        for key in ("ca_file", "cert_file", "key_file"):
            value = getattr(self, key)
            if value is not None and not Path(value).is_file():
                raise ValueError(f"mqtt.tls.{key}: file {value} does not exist")
        return self


class MqttConfig(_Section):
    host: str | None = None  # None: start the embedded broker on 127.0.0.1
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    tls: TLSConfig | None = None
    username: str | None = None
    password: SecretStr | None = None  # shown as ********** in dumps and reprs
    password_env: str | None = None
    client_id: str | None = None  # default: cadence-<device id>
    prefix: Annotated[str, Field(min_length=1, pattern=r"^[^#+]+$")] = "cadence"
    qos: Literal[0, 1, 2] = 1
    discovery: bool = True
    discovery_prefix: Annotated[str, Field(min_length=1, pattern=r"^[^#+]+$")] = "homeassistant"
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    stats_interval: Annotated[float, Field(ge=1, le=86400)] = 30.0
    queue_size: Annotated[int, Field(ge=0, le=1_000_000)] = 1000
    reconnect_min: Annotated[float, Field(gt=0, le=60)] = 1.0
    reconnect_max: Annotated[float, Field(gt=0, le=3600)] = 60.0

    @model_validator(mode="after")
    def _cross(self) -> "MqttConfig":
        if self.password is not None and self.password_env is not None:
            raise ValueError("mqtt.password and mqtt.password_env: give one or the other, not both")
        if (self.password is not None or self.password_env is not None) and self.username is None:
            raise ValueError("mqtt.username: required when a password is given")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError(
                f"mqtt.reconnect_max: must be ≥ mqtt.reconnect_min ({self.reconnect_max} < {self.reconnect_min})"
            )
        if self.host is None and (self.tls is not None or self.username is not None):
            raise ValueError("mqtt.host: TLS and credentials need an external broker (the embedded one is local-only)")
        if self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError("mqtt.prefix: must not start or end with '/'")
        return self

    @property
    def embedded(self) -> bool:
        return self.host is None

    def resolved_password(self) -> str | None:
        """The password, read from the named environment variable if so configured."""
        if self.password_env is None:
            return None if self.password is None else self.password.get_secret_value()
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigError(f"mqtt.password_env: environment variable {self.password_env} is not set")
        return value


class SnapshotConfig(_Section):
    """A small JPEG of what the camera sees, skeleton drawn, for aiming it (off: privacy)."""

    enabled: bool = False
    # at most one picture every `interval` seconds while someone is in view (a request is answered at once)
    interval: Annotated[float, Field(ge=1, le=86400)] = 10.0
    width: Annotated[int, Field(ge=64, le=1920)] = 320  # pixels; the height keeps the aspect ratio
    quality: Annotated[int, Field(ge=10, le=95)] = 70  # JPEG quality


class StorageConfig(_Section):
    # default: $STATE_DIRECTORY (set by systemd), else /var/lib/cadence if writable, else ./state
    state_dir: str | None = None
    # seconds between saves of the day's count while it changes (a power cut loses at most this
    # much counting; rare writes spare the SD card). A reset, a set's end and midnight save at once.
    save_interval: Annotated[float, Field(ge=1, le=86400)] = 60.0

    def resolved_state_dir(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir)
        return default_state_dir()


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"  # json: one object per line (for log shippers)


class Config(_Section):
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    microphone: MicrophoneConfig = Field(default_factory=MicrophoneConfig)
    sound: SoundConfig = Field(default_factory=SoundConfig)
    exercise: ExerciseConfig = Field(default_factory=ExerciseConfig)
    snapshot: SnapshotConfig = Field(default_factory=SnapshotConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @property
    def state_dir(self) -> Path:
        return self.storage.resolved_state_dir()

    def model_path(self, section: ModelFileConfig) -> Path:
        """A model file of ``section``; relative paths are under the state directory."""
        path = Path(section.model)
        return path if path.is_absolute() else self.state_dir / path

    @property
    def sound_model_path(self) -> Path:
        return self.model_path(self.sound)

    @property
    def exercise_model_path(self) -> Path:
        return self.model_path(self.exercise)

    @property
    def base_topic(self) -> str:
        return f"{self.mqtt.prefix}/{self.device.id}"

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"cadence-{self.device.id}"


def parse_config(data: dict[str, Any], *, origin: str = "config") -> Config:
    """Validate a parsed TOML mapping; raises :class:`ConfigError` (one line)."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(one_line(f"{origin}: {describe(exc, Config)}")) from None


def read_config_data(path: str | os.PathLike[str] | None = None, *, missing_ok: bool = False) -> dict[str, Any]:
    """The TOML mapping in ``path`` (default ``/etc/cadence/cadence.toml``), not yet validated.

    With ``missing_ok`` an absent file is an empty mapping (all defaults).
    """
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise ConfigError(f"{file}: no such configuration file (`cadence config example > {file}` writes one)") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{file}: larger than a configuration file can be ({MAX_CONFIG_BYTES} bytes; "
                          "is it the right file?)")
    try:
        return tomllib.loads(raw.decode("utf-8-sig"))  # editors on Windows put a byte-order mark first
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: TOML syntax error: {exc}") from None


def load_config(path: str | os.PathLike[str] | None = None, *, missing_ok: bool = False) -> Config:
    """Read and validate the TOML file at ``path`` (default ``/etc/cadence/cadence.toml``).

    With ``missing_ok`` an absent file means all defaults (the quick start).
    """
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    return parse_config(read_config_data(file, missing_ok=missing_ok), origin=str(file))


# keys whose silent return to the default would move the device: its sources, its broker, its topics
GUARDED_KEYS = (("camera", "source"), ("camera", "enabled"), ("microphone", "device"), ("microphone", "enabled"),
                ("mqtt", "host"), ("mqtt", "port"), ("mqtt", "prefix"), ("device", "id"))


def reload_refusal(old_data: dict[str, Any], new_data: dict[str, Any], old: Config, new: Config) -> str | None:
    """Why a re-read file must not replace the running configuration, or None.

    An empty file, or one that lost a key moving the device (a source, the broker,
    the device id) that the running file had set, is what a half-saved or
    truncated file looks like: applying it would turn the camera into device 0 or
    the broker into the embedded one. Setting such a key explicitly is always applied.
    """
    if old_data and not new_data:
        return "the file is empty (a half-saved file?)"
    for section, key in GUARDED_KEYS:
        before, after = old_data.get(section), new_data.get(section)
        had = isinstance(before, dict) and key in before
        has = isinstance(after, dict) and key in after
        was, would = getattr(getattr(old, section), key), getattr(getattr(new, section), key)
        switched_off = key != "enabled" and getattr(getattr(new, section), "enabled", True) is False
        if had and not has and was != would and not switched_off:
            return (f"[{section}] {key} is gone (was {was!r}, the default {would!r} would apply: a truncated file?); "
                    f"to change it, write {key} = … explicitly")
    return None


EXAMPLE = '''\
# Cadence configuration — /etc/cadence/cadence.toml
# Check it with:  cadence config check /etc/cadence/cadence.toml
# Every key is optional; the values shown are the defaults unless noted.

[device]
# id = "kitchen-pi"            # default: the hostname; used in MQTT topics and entity ids
# name = "Kitchen"             # shown in Home Assistant; default "Cadence <id>"

[camera]
enabled = true
source = 0                     # V4L2 index, "/dev/video0", "rtsp://…", "picamera2", or a video file
profile = "auto"               # board profile: auto (from the device tree), zero2w, pi4, pi5 or generic;
                               # it sets the four keys below and the landmark model unless set here
# resolution = [640, 480]      # width, height (default: the profile's, else 640x480)
# fps = 30.0                   # camera frames per second (default: the profile's, else 30)
# downsample = 1               # keep every n-th frame (default: the profile's, else 1; 2 for slow exercises)
# threads = 1                  # pose inference threads (default: the profile's, else 1)
# landmark_model = "pose_landmark_full.tflite"   # a landmark model of models/manifest.json (default: the
                               # profile's: the int8 variant on a Pi when built, else this full float model)
rotation = 0                   # 0, 90, 180 or 270 (clockwise)
window = 90                    # frames per counting window
stride = 15                    # frames between counts (≤ window)
selector = "maximum_bounding_box_area"  # or highest/lowest/leftmost/rightmost_joint_location
rest_time = 8.0                # seconds of pause that end a set
recognize_exercise = true      # name each set by the exercise (shipped model, or the owner's: [exercise])
# loop = false                 # video-file sources: start again at the end
# realtime = true              # video-file sources: pace at the file's frame rate

[microphone]
enabled = true
# device = "USB Audio"         # PortAudio name or index, or an audio file; default: system default
gain = 1.0
# loop = false                 # audio-file sources: start again at the end
# realtime = true              # audio-file sources: pace at the file's rate

[sound]
model = "models/sound.model"   # relative to storage.state_dir; reloaded when the file changes
default_threshold = 0.5
# thresholds = { doorbell = 0.6, crying_baby = 0.4 }
# allow = ["doorbell", "crying_baby", "smoke_alarm"]   # report only these labels
min_volume_db = -70.0          # skip inference below this level (dBFS)
smoothing = 2                  # windows averaged per decision
cooldown = 2.0                 # seconds before the same label is reported again
# min_duration = 0.0           # shortest event reported (s)
# max_duration = 10.0          # a sound that goes on is reported again after this (s)
# window = 3.0                 # seconds of audio per classification (trained models expect 3.0)
# overlap = 0.5                # 0 ≤ overlap < 1
reject = true                  # a sound unlike every taught one is "not a taught sound", never an event
reload_check_seconds = 2.0     # seconds between looks at whether the model file changed
keep_background = false        # consent: keep quiet clips of the room (no sound event in them) for the next
                               # `cadence retrain sound`, in <state_dir>/training-data/background/auto-background_*.wav
keep_background_max = 50       # at most this many kept clips (the oldest kept one goes; the owner's files never)
keep_background_every = 600.0  # seconds: at most one clip this often (rare writes spare the SD card)

[exercise]
model = "models/exercise.model"   # relative to storage.state_dir; the shipped model while it does not exist
reload_check_seconds = 2.0     # seconds between looks at whether the file changed

[snapshot]
enabled = false                # a small JPEG with the skeleton drawn, for aiming the camera (privacy: off)
interval = 10.0                # at most one every N seconds while someone is in view (a request: at once)
width = 320                    # pixels
quality = 70                   # JPEG quality

[mqtt]
# host = "broker.local"        # no host: an embedded broker on 127.0.0.1
port = 1883
# username = "cadence"
# password_env = "CADENCE_MQTT_PASSWORD"   # or password = "…" (not both)
# client_id = "cadence-kitchen-pi"
prefix = "cadence"             # topics: <prefix>/<device id>/…
qos = 1
discovery = true               # Home Assistant MQTT discovery
discovery_prefix = "homeassistant"
keepalive = 30
stats_interval = 30.0          # seconds between stats messages
queue_size = 1000              # events kept while the broker is unreachable
reconnect_min = 1.0            # seconds; doubles up to reconnect_max
reconnect_max = 60.0

# [mqtt.tls]
# ca_file = "/etc/cadence/ca.crt"
# cert_file = "/etc/cadence/client.crt"   # with key_file, for client certificates
# key_file = "/etc/cadence/client.key"
# insecure = false             # true skips the broker's hostname check (self-signed test brokers only)

[storage]
# state_dir = "/var/lib/cadence"  # models, checkpoints, feature cache, data
save_interval = 60.0           # seconds between saves of the day's count while counting

[logging]
level = "info"                 # debug, info, warning, error
format = "text"                # or "json": one object per line
'''
