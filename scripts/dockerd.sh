#!/usr/bin/env bash
# A private Docker daemon for the harness's docker backend: its own data root, socket and
# exec root, so it never touches (or depends on) a system dockerd. Root only.
#   scripts/dockerd.sh start    start it in the background (idempotent), wait until it answers
#   scripts/dockerd.sh stop     stop it (its containers stop with it)
#   scripts/dockerd.sh status   exit 0 if it answers
#   scripts/dockerd.sh env      print the DOCKER_HOST line to export
# Settings (environment): HARNESS_DOCKER_ROOT (default /var/lib/harness-docker),
# HARNESS_DOCKER_SOCK (default /run/harness-docker.sock).
set -euo pipefail

ROOT=${HARNESS_DOCKER_ROOT:-/var/lib/harness-docker}
SOCK=${HARNESS_DOCKER_SOCK:-/run/harness-docker.sock}
EXEC_ROOT=${HARNESS_DOCKER_EXEC_ROOT:-/run/harness-docker}
PIDFILE=$EXEC_ROOT.pid
LOG=$ROOT.log

answers() { DOCKER_HOST="unix://$SOCK" timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

case "${1:-}" in
  start)
    if answers; then echo "dockerd: already running at unix://$SOCK"; exit 0; fi
    command -v dockerd >/dev/null || { echo "dockerd: not installed; apt-get install -y docker.io" >&2; exit 2; }
    [ "$(id -u)" -eq 0 ] || { echo "dockerd: must run as root (sudo $0 start)" >&2; exit 2; }
    mkdir -p "$ROOT" "$EXEC_ROOT"
    # setsid: the daemon outlives this script and the shell that ran it; nohup: and its hangup.
    setsid nohup dockerd --data-root "$ROOT" --exec-root "$EXEC_ROOT" --pidfile "$PIDFILE" \
      --host "unix://$SOCK" --bridge none --log-level warn </dev/null >>"$LOG" 2>&1 &
    for _ in $(seq 1 150); do
      if answers; then echo "dockerd: ready at unix://$SOCK (log: $LOG)"; exit 0; fi
      sleep 0.2
    done
    echo "dockerd: did not answer at unix://$SOCK within 30 s; its log says:" >&2
    tail -n 10 "$LOG" >&2
    exit 1
    ;;
  stop)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      pid=$(cat "$PIDFILE")
      kill -TERM "$pid"
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || { echo "dockerd: stopped"; exit 0; }; sleep 0.2; done
      echo "dockerd: pid $pid did not stop within 30 s" >&2
      exit 1
    fi
    echo "dockerd: not running"
    ;;
  status)
    answers && echo "dockerd: running at unix://$SOCK" || { echo "dockerd: not answering at unix://$SOCK"; exit 1; }
    ;;
  env)
    echo "export DOCKER_HOST=unix://$SOCK"
    ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
