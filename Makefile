# Cadence developer targets.
#
#   make setup            system packages, .venv, Cadence, pretrained models (./scripts/dev.sh setup)
#   make test             the test suite (./scripts/dev.sh test; pytest arguments: make test ARGS="-k audio")
#   make bench            every benchmark and evaluation below, one after another (make -k bench: go on after a failure)
#   make <bench target>   one of them: bench-pose eval-pose bench-counter bench-exercise eval-count eval-count-videos
#                         bench-audio eval-sound bench-train bench-memory bench-soak bench-service
#   make calibration      rewrite the audio feature print's int8 calibration (a shipped file; see the script)
#   make bench-mediapipe  pose speed and landmarks against MediaPipe (not in `bench`: builds a
#                         throwaway venv with mediapipe in /tmp, see scripts/compare_mediapipe.py)
#   make check-homeassistant  two Cadence daemons against a real Home Assistant (not in CI: builds
#                         throwaway venvs under /tmp/cadence-ha; see scripts/check_homeassistant.py)
#   make pose-variants    build the int8 landmark model board profiles pick (quantizer in its own /tmp venv)
#   make bench-pose-variants  its landmark distance to the float model and its cost, side by side
#   make check-aarch64    install and run Cadence in an emulated arm64 root per board CPU, compared with
#                         x86 (not in CI; root, slow: see docs/aarch64.md; CHECK_ARGS for more options)
#
# Variables: SOAK_MINUTES (bench-soak length, default 3), SOAK_ARGS (more scripts/soak.py options),
# NICE (prefix for every script, e.g. NICE="nice -n 10" on a shared machine), SKIP (targets to leave
# out of `make bench`, e.g. SKIP="bench-soak bench-train"), VENV_PYTHON (default .venv/bin/python),
# HA_ARGS (more scripts/check_homeassistant.py options, e.g. HA_ARGS="--python 3.11").
# The figures, their targets and the last measured values: docs/benchmarks.md.

VENV_PYTHON ?= .venv/bin/python
SOAK_MINUTES ?= 3
NICE ?=
SKIP ?=
ARGS ?=
SOAK_ARGS ?=
HA_ARGS ?=
CHECK_ARGS ?=
RUN = $(NICE) $(VENV_PYTHON)
# speed figures depend on what else runs: each target prints the load average first
LOAD = load average $$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

SCRIPT_TARGETS = bench-pose eval-pose bench-counter bench-exercise eval-count eval-count-videos bench-audio eval-sound \
                 bench-train bench-memory bench-soak
BENCH_TARGETS = $(SCRIPT_TARGETS) bench-service

.PHONY: help setup test bench bench-mediapipe check-homeassistant calibration pose-variants bench-pose-variants check-aarch64 $(BENCH_TARGETS)
# benchmarks time themselves: never run two at once, even under make -j
.NOTPARALLEL:

help:
	@sed -n '3,22p' Makefile | sed 's/^# \{0,1\}//'

setup:
	./scripts/dev.sh setup

test:
	./scripts/dev.sh test $(ARGS)

bench: setup $(filter-out $(SKIP),$(BENCH_TARGETS))
	@echo "== make bench: done ($(filter-out $(SKIP),$(BENCH_TARGETS))); figures and targets: docs/benchmarks.md"

# One line each: what it measures, then the script that prints the figures.
bench-pose:    WHAT = pose fps on one thread (target >= 30)
bench-pose:    CMD  = scripts/bench_pose.py --runs 3 --no-mediapipe
eval-pose:     WHAT = PCK@0.2 against human labels (COCO, MPII)
eval-pose:     CMD  = scripts/eval_pose_pck.py
bench-counter: WHAT = counter CPU per window (target <= 1 ms)
bench-counter: CMD  = scripts/bench_counter.py
bench-exercise: WHAT = exercise recogniser CPU per window (target <= 1 ms)
bench-exercise: CMD  = scripts/bench_exercise.py
eval-count:    WHAT = counting accuracy on repcount-dev (MAE, OBO)
eval-count:    CMD  = scripts/eval_repcount.py
eval-count-videos: WHAT = counts of the whole live pipeline on the annotated videos
eval-count-videos: CMD  = scripts/eval_repcount.py --no-cv
bench-audio:   WHAT = audio real-time factor, feature print + classification (target <= 0.01)
bench-audio:   CMD  = scripts/bench_audio.py
eval-sound:    WHAT = held-out sound accuracy and false alarms on room-sounds-dev (targets 0.985 all clips, 0.90 with 10 per class; untaught silent 0.80)
eval-sound:    CMD  = scripts/eval_sound.py
bench-train:   WHAT = incremental vs full retrain (target >= 10x, within 1 point) and training memory
bench-train:   CMD  = scripts/bench_train.py --memory-sizes 4000,32000 --chunk-size 256,4096
bench-memory:  WHAT = peak RSS of classify, evaluate and train on 5 s, 10 min and 60 min clips (target: within +50 MB)
bench-memory:  CMD  = scripts/bench_memory.py
bench-soak:    WHAT = the whole daemon for $(SOAK_MINUTES) min (RSS, CPU, dropped frames)
bench-soak:    CMD  = scripts/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

$(SCRIPT_TARGETS): setup
	@echo "== $@: $(WHAT); $(LOAD)"
	$(RUN) $(CMD)

bench-service:
	@echo "== bench-service: systemd-analyze security exposure of the units (target <= 3.0); $(LOAD)"
	systemd-analyze security --offline=yes systemd/cadence.service systemd/cadence-retrain.service | grep "Overall exposure"

calibration: setup
	$(RUN) scripts/calibrate_featureprint.py

bench-mediapipe: setup
	@echo "== bench-mediapipe: Cadence/MediaPipe pose fps (target ratio >= 1.2), then landmark distance to MediaPipe; $(LOAD)"
	$(RUN) scripts/bench_pose.py --runs 3
	$(RUN) scripts/compare_mediapipe.py

check-homeassistant: setup
	@echo "== check-homeassistant: entities, ids, states, events, buttons, availability, snapshot in a real Home Assistant; $(LOAD)"
	$(RUN) scripts/check_homeassistant.py --screenshot docs/images/ha-device-page.png $(HA_ARGS)

# The shipped exercise classifier, rebuilt byte-identically from ../shared/data; pins its SHA-256
# in models/manifest.json (scripts/build_exercise_model.py, docs/exercise.md).
.PHONY: exercise-model
exercise-model:
	$(RUN) scripts/build_exercise_model.py

# The shipped sound negatives (SNU-B36-50 floor noises, MIT), rebuilt byte-identically from
# ../shared/data; pins their SHA-256 in models/manifest.json (scripts/build_sound_negatives.py, docs/audio.md).
.PHONY: sound-negatives
sound-negatives:
	$(RUN) scripts/build_sound_negatives.py

pose-variants: setup
	$(RUN) scripts/build_pose_variants.py

bench-pose-variants: pose-variants
	@echo "== bench-pose-variants: landmark distance to the float model (limit 0.05 torso) and cost per model; $(LOAD)"
	$(RUN) scripts/build_pose_variants.py --measure

check-aarch64: pose-variants
	@echo "== check-aarch64: emulated arm64 (timings under emulation are not figures); $(LOAD)"
	$(RUN) scripts/check_aarch64.py $(CHECK_ARGS)
