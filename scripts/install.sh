#!/usr/bin/env bash
# Install Cadence as an appliance on Raspberry Pi OS (Debian 12 "bookworm") — idempotent.
#
#   sudo ./scripts/install.sh            install or upgrade, enable and (re)start cadence.service
#   sudo ./scripts/install.sh --no-start install without starting the service
#
# What it does (each step is skipped when already done):
#   1. system packages (Python venv, PortAudio, libsndfile, mosquitto + clients, picamera2 where available)
#   2. a `cadence` system user in the video and audio groups
#   3. the code in /opt/cadence/src and a venv in /opt/cadence/venv (sees apt's picamera2)
#   4. the pinned pretrained models in /opt/cadence/models (SHA-256 checked)
#   5. /etc/cadence/cadence.toml (only if absent: your edits are kept), /var/lib/cadence
#   6. systemd units cadence.service and cadence-retrain.service, /usr/local/bin/cadence
# Undo with scripts/uninstall.sh.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
# The CADENCE_* variables exist only to try the script in a scratch directory;
# the units expect the defaults.
PREFIX=${CADENCE_PREFIX:-/opt/cadence}
VENV=$PREFIX/venv
CONF_DIR=${CADENCE_CONF_DIR:-/etc/cadence}
STATE_DIR=${CADENCE_STATE_DIR:-/var/lib/cadence}
UNIT_DIR=${CADENCE_UNIT_DIR:-/etc/systemd/system}
BIN_DIR=${CADENCE_BIN_DIR:-/usr/local/bin}
USER_NAME=${CADENCE_USER:-cadence}
PY=${CADENCE_PYTHON:-/usr/bin/python3}   # the system Python: apt's picamera2 is built for it
START=1
for arg in "$@"; do
    case "$arg" in
        --no-start) START=0 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

log() { printf '\033[1m[cadence install]\033[0m %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo $0)" >&2; exit 1; }
command -v apt-get >/dev/null || { echo "install.sh: needs a Debian / Raspberry Pi OS system (apt-get)" >&2; exit 1; }

# 1. system packages -----------------------------------------------------------
PACKAGES=(python3 python3-venv python3-pip libportaudio2 libsndfile1 mosquitto mosquitto-clients)
if apt-cache show python3-picamera2 >/dev/null 2>&1; then PACKAGES+=(python3-picamera2); fi
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && [ -z "${CADENCE_SKIP_APT:-}" ]; then
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. user -----------------------------------------------------------------------
if ! id "$USER_NAME" >/dev/null 2>&1; then
    log "creating system user $USER_NAME"
    useradd --system --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
fi
if [ "$USER_NAME" != root ]; then
    for group in video audio; do
        getent group "$group" >/dev/null || groupadd --system "$group"
        id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx "$group" || usermod -aG "$group" "$USER_NAME"
    done
fi
GROUP_NAME=$(id -gn "$USER_NAME")

# 3. code and venv ------------------------------------------------------------------
log "copying the code to $PREFIX/src"
install -d -m 0755 "$PREFIX" "$PREFIX/src" "$PREFIX/models"
find "$PREFIX/src" -mindepth 1 -delete
tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./state --exclude='__pycache__' \
    --exclude='./models/*.tflite' --exclude=./models/.cache --exclude='*.egg-info' -cf - . | tar -C "$PREFIX/src" -xf -
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PY" -m venv --system-site-packages "$VENV"   # system site: apt's picamera2
fi
stamp="$VENV/.cadence-source"
want=$(cd "$PREFIX/src" && find device pyproject.toml -type f -name '*.py' -o -name pyproject.toml | sort | xargs sha256sum | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing Cadence into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$PREFIX/src[plot]"
    echo "$want" > "$stamp"
fi
ln -sf "$VENV/bin/cadence" "$BIN_DIR/cadence"

# 4. pretrained models ----------------------------------------------------------------
install -m 0644 "$PREFIX/src/models/manifest.json" "$PREFIX/models/manifest.json"
for f in "$PREFIX"/src/models/*.model "$PREFIX"/src/models/*.cadence "$PREFIX"/src/models/*.npz; do  # built from the shared data and committed (pinned like the rest)
    [ -f "$f" ] && install -m 0644 "$f" "$PREFIX/models/"
done
if [ -d "$SRC/models" ]; then  # reuse files already fetched in the checkout (verified below)
    for f in "$SRC"/models/*.tflite; do [ -f "$f" ] && [ ! -f "$PREFIX/models/$(basename "$f")" ] && cp "$f" "$PREFIX/models/"; done
fi
log "fetching and verifying the pretrained models"
CADENCE_MODELS_DIR="$PREFIX/models" "$VENV/bin/cadence" models fetch >/dev/null
CADENCE_MODELS_DIR="$PREFIX/models" "$VENV/bin/cadence" models status >/dev/null
chmod -R a+rX "$PREFIX"

# 5. configuration and state ---------------------------------------------------------------
install -d -m 0750 -o root -g "$GROUP_NAME" "$CONF_DIR"
if [ ! -f "$CONF_DIR/cadence.toml" ]; then
    log "writing $CONF_DIR/cadence.toml (edit it, then: sudo systemctl reload cadence)"
    "$VENV/bin/cadence" config example > "$CONF_DIR/cadence.toml"
    chown "root:$GROUP_NAME" "$CONF_DIR/cadence.toml"
    chmod 0640 "$CONF_DIR/cadence.toml"
fi
# --no-models: the pinned files were verified above; an owner's damaged model must not stop an update
"$VENV/bin/cadence" config check --no-models "$CONF_DIR/cadence.toml"
install -d -m 0750 -o "$USER_NAME" -g "$GROUP_NAME" "$STATE_DIR" "$STATE_DIR/models" "$STATE_DIR/training-data"

# 6. systemd units --------------------------------------------------------------------------
changed=0
for unit in cadence.service cadence-retrain.service; do
    if ! cmp -s "$PREFIX/src/systemd/$unit" "$UNIT_DIR/$unit"; then
        install -m 0644 "$PREFIX/src/systemd/$unit" "$UNIT_DIR/$unit"
        changed=1
    fi
done
if [ -d /run/systemd/system ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then
    [ "$changed" -eq 1 ] && systemctl daemon-reload
    systemctl enable cadence.service >/dev/null 2>&1
    if [ "$START" -eq 1 ]; then
        log "starting cadence.service"
        systemctl restart cadence.service
        systemctl --no-pager --lines=0 status cadence.service || true
    fi
else
    log "systemd is not running here: units installed but not started"
fi

cat >&2 <<EOF

Cadence is installed.
  configuration  $CONF_DIR/cadence.toml   (check: cadence config check $CONF_DIR/cadence.toml)
  state          $STATE_DIR               (models, training data, caches)
  logs           journalctl -u cadence -f
  watch MQTT     mosquitto_sub -v -t 'cadence/#'
  retrain        sudo cadence retrain sound
EOF
