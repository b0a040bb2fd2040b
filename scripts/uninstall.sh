#!/usr/bin/env bash
# Remove Cadence installed by scripts/install.sh — idempotent.
#
#   sudo ./scripts/uninstall.sh          remove the service, code, venv and models;
#                                        keep /etc/cadence and /var/lib/cadence (your config, data, trained models)
#   sudo ./scripts/uninstall.sh --purge  also remove those and the cadence user
# System packages (mosquitto, PortAudio, …) are left installed.
set -euo pipefail

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

if [ -d /run/systemd/system ]; then
    for unit in cadence.service cadence-retrain.service; do
        if systemctl list-unit-files "$unit" >/dev/null 2>&1; then
            systemctl disable --now "$unit" >/dev/null 2>&1 || true
        fi
    done
fi
for unit in cadence.service cadence-retrain.service; do
    if [ -f "/etc/systemd/system/$unit" ]; then
        log "removing /etc/systemd/system/$unit"
        rm -f "/etc/systemd/system/$unit"
    fi
done
[ -d /run/systemd/system ] && systemctl daemon-reload || true

if [ -L /usr/local/bin/cadence ]; then rm -f /usr/local/bin/cadence; fi
if [ -d /opt/cadence ]; then
    log "removing /opt/cadence"
    rm -rf /opt/cadence
fi

if [ "$PURGE" -eq 1 ]; then
    for dir in /etc/cadence /var/lib/cadence; do
        if [ -e "$dir" ]; then log "removing $dir"; rm -rf "$dir"; fi
    done
    if id cadence >/dev/null 2>&1; then
        log "removing user cadence"
        userdel cadence
    fi
else
    log "kept /etc/cadence and /var/lib/cadence (use --purge to remove them too)"
fi
