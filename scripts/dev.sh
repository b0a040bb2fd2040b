#!/usr/bin/env bash
# Cadence developer entry point — the README's quick start calls this.
#   ./scripts/dev.sh setup   system packages, .venv, Cadence, pretrained models
#   ./scripts/dev.sh run     setup, then run the main job
#   ./scripts/dev.sh test    setup (with test services' packages), then the test suite
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}

# Debian / Raspberry Pi OS packages: for running, and extra ones the tests use
# (a real mosquitto broker, a PulseAudio null sink as microphone, ffmpeg to serve a test stream;
# make for `make test` / `make bench`).
APT_RUN=(libportaudio2 libsndfile1 mosquitto mosquitto-clients)
APT_TEST=(pulseaudio pulseaudio-utils libasound2-plugins alsa-utils ffmpeg make)

log() { printf '\033[1m[cadence]\033[0m %s\n' "$*" >&2; }

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then missing+=(python3-venv); fi
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        log "not a Debian system: please install ${missing[*]} yourself"; return 0
    fi
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

venv_install() {
    # one install for every use (the test extras are small), so switching run/test never reinstalls
    local extra="dev,plot,broker"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        "$PY" -m venv "$VENV"
    fi
    local stamp="$VENV/.cadence-installed"
    local want
    want=$(sha256sum pyproject.toml | cut -c1-16)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "installing Cadence into $VENV ($extra)"
        local pip_log="$VENV/pip-install.log"
        if ! { "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip &&
               "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extra]"; } >"$pip_log" 2>&1; then
            cat "$pip_log" >&2
            log "installing Cadence failed (log above, also in $pip_log)"
            exit 1
        fi
        echo "$want" > "$stamp"
    fi
    log "checking pretrained model files"
    "$VENV/bin/cadence" models fetch >/dev/null
}

cmd=${1:-help}
shift || true
case "$cmd" in
    setup)
        apt_install "${APT_RUN[@]}"
        venv_install
        ;;
    run)
        apt_install "${APT_RUN[@]}"
        venv_install
        log "starting the daemon (cadence run $*); stop it with Ctrl-C. More commands: $VENV/bin/cadence --help"
        exec "$VENV/bin/cadence" run "$@"
        ;;
    test)
        apt_install "${APT_RUN[@]}" "${APT_TEST[@]}"
        venv_install
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: $0 setup|run|test [args...]" >&2
        exit 2
        ;;
esac
