#!/usr/bin/env bash
# Remove Cadence installed by scripts/install.sh — idempotent.
#
#   sudo ./scripts/uninstall.sh          remove the service, code, venv and models;
#                                        keep /etc/cadence and /var/lib/cadence (your config, data, trained models)
#   sudo ./scripts/uninstall.sh --purge  also remove those and the cadence user
# System packages (mosquitto, PortAudio, …) are left installed.
set -euo pipefail

# The CADENCE_* variables mirror install.sh's (scratch-directory trials only).
PREFIX=${CADENCE_PREFIX:-/opt/cadence}
CONF_DIR=${CADENCE_CONF_DIR:-/etc/cadence}
STATE_DIR=${CADENCE_STATE_DIR:-/var/lib/cadence}
UNIT_DIR=${CADENCE_UNIT_DIR:-/etc/systemd/system}
BIN_DIR=${CADENCE_BIN_DIR:-/usr/local/bin}
USER_NAME=${CADENCE_USER:-cadence}
PURGE=0
for arg in "$@"; do
    case "$arg" in
        --purge) PURGE=1 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "uninstall.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done
log() { printf '\033[1m[cadence uninstall]\033[0m %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: run as root (sudo $0)" >&2; exit 1; }

if [ -d /run/systemd/system ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then
    for unit in cadence.service cadence-retrain.service; do
        if systemctl list-unit-files "$unit" >/dev/null 2>&1; then
            systemctl disable --now "$unit" >/dev/null 2>&1 || true
        fi
    done
fi
for unit in cadence.service cadence-retrain.service; do
    if [ -f "$UNIT_DIR/$unit" ]; then
        log "removing $UNIT_DIR/$unit"
        rm -f "$UNIT_DIR/$unit"
    fi
done
if [ -d /run/systemd/system ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then systemctl daemon-reload; fi

if [ -L "$BIN_DIR/cadence" ]; then rm -f "$BIN_DIR/cadence"; fi
if [ -d "$PREFIX" ]; then
    log "removing $PREFIX"
    rm -rf "$PREFIX"
fi

if [ "$PURGE" -eq 1 ]; then
    for dir in "$CONF_DIR" "$STATE_DIR"; do
        if [ -e "$dir" ]; then log "removing $dir"; rm -rf "$dir"; fi
    done
    if [ "$USER_NAME" != root ] && id "$USER_NAME" >/dev/null 2>&1; then
        log "removing user $USER_NAME"
        userdel "$USER_NAME"
    fi
else
    log "kept $CONF_DIR and $STATE_DIR (use --purge to remove them too)"
fi
