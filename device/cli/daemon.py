"""``cadence run``, ``cadence config check|example``, ``cadence retrain sound|exercise``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..components import CadenceError
from ..daemon.config import DEFAULT_CONFIG_PATH, EXAMPLE, Config, load_config
from ..daemon.memory import limit_malloc_arenas, pin_malloc_thresholds
from .options import command_group


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": round(record.created, 3),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def setup_logging(config: Config) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if config.logging.format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.logging.level.upper())
    logging.getLogger("amqtt").setLevel(logging.WARNING)


def _resolve_config(args: argparse.Namespace) -> tuple[Config, Path | None]:
    if args.config is not None:
        return load_config(args.config), Path(args.config)
    if DEFAULT_CONFIG_PATH.exists():
        return load_config(DEFAULT_CONFIG_PATH), DEFAULT_CONFIG_PATH
    return Config(), None


def _cmd_run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # camera-probe warnings: our own log says it in one line
    limit_malloc_arenas()  # before the pipelines start their threads
    pin_malloc_thresholds()  # before the models load
    from ..daemon.pipelines import (
        audio_pipeline,
        load_exercise_model,
        load_sound_model,
        shipped_exercise_model,
        vision_pipeline,
    )
    from ..daemon.supervisor import Supervisor

    config, path = _resolve_config(args)
    setup_logging(config)
    log = logging.getLogger("cadence.daemon")
    if path is None:
        log.info("no %s: running with defaults (`cadence config example` shows them)", DEFAULT_CONFIG_PATH)
    if config.mqtt.embedded:
        log.info("no [mqtt] host configured: using an embedded broker on 127.0.0.1:%d", config.mqtt.port)
        log.info("watch it with: mosquitto_sub -v -h 127.0.0.1 -p %d -t '%s/#'", config.mqtt.port, config.mqtt.prefix)
    supervisor = Supervisor(config, config_path=path, model_loader=load_sound_model,
                            exercise_loader=load_exercise_model, shipped_exercise_model=shipped_exercise_model,
                            factories={"vision": vision_pipeline, "audio": audio_pipeline})
    asyncio.run(supervisor.run())
    return 0


def _cmd_config_check(args: argparse.Namespace) -> int:
    from ..daemon.modelcheck import check_models
    from ..daemon.pipelines import load_exercise_model, load_sound_model

    config = load_config(args.file)
    broker = "embedded (127.0.0.1)" if config.mqtt.embedded else f"{config.mqtt.host}:{config.mqtt.port}"
    print(f"{args.file}: OK — device {config.device.id}, topics {config.base_topic}/…, broker {broker}")
    checks = [] if args.no_models else check_models(
        config, sound_loader=load_sound_model, exercise_loader=load_exercise_model)
    for check in checks:
        print(f"  {check.line()}")
    if args.json:
        print(config.model_dump_json(indent=2))
    problems = list(dict.fromkeys(check.problem for check in checks if check.problem))  # a bad manifest: once
    if problems:
        raise CadenceError(f"{args.file}: the daemon could not load {'; '.join(problems)}")
    return 0


def _cmd_config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(EXAMPLE)
    return 0


def _cmd_retrain(args: argparse.Namespace) -> int:
    from ..daemon.retrain import retrain

    if not 0 < args.timeout <= 86400:  # said before training, not after it (nan is refused too)
        raise CadenceError(f"--timeout must be more than 0 and at most 86400 seconds, got {args.timeout:g}")
    config, _ = _resolve_config(args)
    return retrain(config, args.retrain_command, foreground=args.foreground, wait=not args.no_wait,
                   timeout=args.timeout, data=args.data, allow_label_loss=args.allow_label_loss)


def _cmd_retrain_requested(args: argparse.Namespace) -> int:
    from ..daemon.retrain import retrain

    config, _ = _resolve_config(args)
    return retrain(config, None, foreground=True, wait=False)


def register(subparsers: Any, groups: dict[str, Any]) -> None:
    run = subparsers.add_parser(
        "run", help="run the appliance daemon (camera + microphone → MQTT)",
        description="The appliance: counts repetitions from the camera and detects sounds from the microphone, "
        "and publishes both on MQTT (with Home Assistant discovery) until stopped. SIGHUP re-reads the "
        "configuration and the models (sound, exercise); SIGTERM stops cleanly. Under systemd it reports READY, its status "
        "and watchdog pings (docs/daemon.md); topics and payloads: docs/mqtt.md.")
    run.add_argument("--config", metavar="FILE", help=f"configuration file (default {DEFAULT_CONFIG_PATH} if present)")
    run.set_defaults(handler=_cmd_run)

    config_sub = command_group(subparsers, groups, "config", "check or print the daemon configuration", "ACTION")
    check = config_sub.add_parser("check", help="validate a configuration file")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--json", action="store_true", help="also print the resolved configuration as JSON")
    check.add_argument("--no-models", action="store_true",
                       help="the configuration only, without loading the model files it names (the daemon's "
                            "start: it runs the shipped model where the owner's cannot be loaded)")
    check.set_defaults(handler=_cmd_config_check)
    example = config_sub.add_parser("example", help="print a commented example configuration")
    example.set_defaults(handler=_cmd_config_example)

    retrain_sub = command_group(subparsers, groups, "retrain",
                                "retrain a model on the device's data (what you run over SSH)", "WHAT")
    config_help = f"configuration file (default {DEFAULT_CONFIG_PATH} if present)"
    from ..daemon.retrain import KINDS

    for what, help_ in (
        ("sound", "retrain the sound classifier on <state_dir>/{data} and switch to it"),
        ("exercise", "teach the exercise recogniser the exercises in <state_dir>/{data} (added to the shipped "
         "ones) and switch to it"),
    ):
        data = KINDS[what].data
        kind = retrain_sub.add_parser(
            what, help=help_.format(data=data),
            description=help_.format(data=data) + ": under systemd cadence-retrain.service trains (the daemon keeps "
            "running), refuses a model that lost a label of the active one unless --allow-label-loss, publishes it "
            "(the previous version kept for rollback) and waits until the running daemon reports the new model.")
        kind.add_argument("--config", metavar="FILE", help=config_help)
        kind.add_argument("--foreground", action="store_true", help="train in this process instead of the systemd unit")
        kind.add_argument("--data", metavar="DIR", help=f"training data (default <state_dir>/{data})")
        kind.add_argument("--no-wait", action="store_true", help="do not wait for the daemon to switch to the new model")
        kind.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the daemon's switch (default 60)")
        kind.add_argument("--allow-label-loss", action="store_true",
                          help="publish the new model even if it lacks labels the active model has (default: refuse)")
        kind.set_defaults(handler=_cmd_retrain)
    requested = retrain_sub.add_parser("requested", help="train what the last `cadence retrain` asked for, here "
                                       "(what cadence-retrain.service runs)")
    requested.add_argument("--config", metavar="FILE", help=config_help)
    requested.set_defaults(handler=_cmd_retrain_requested)

