#!/usr/bin/env bash
# Container engine for the "container" Envoy backend (issue 7). Meant to be `source`d (by .ci/test), so it
# can export DOCKER_HOST; it can also be run directly (`bash .ci/container-engine.sh`) to set up.
#
# Idempotent. On a machine that already has a working Docker Engine API (DOCKER_HOST answering, or
# /var/run/docker.sock answering) it changes nothing. Otherwise it:
#   1. installs podman and runc (apt) if missing;
#   2. writes /etc/containers/containers.conf: fixed rlimits (the sandbox forbids raising them) and the
#      runc runtime (crun fails on these hosts' hybrid cgroups) - only if the file differs;
#   3. starts `podman system service --time=0 unix://$DIR/podman.sock` in the background unless it
#      answers (nohup; PID in $DIR/podman.pid; log in $DIR/podman.log; DIR = $MESHFILTER_ENGINE_DIR,
#      default /run/meshfilter);
#   4. waits until /_ping answers and exports DOCKER_HOST;
#   5. exports MESHFILTER_ENGINE_STARTED_PID=<pid> only when it started the service itself (step 3), so
#      that the caller (.ci/test) stops exactly what it started and leaves alone an engine that was
#      already running (e.g. the one shared by several engineers or CI jobs).
# Safe under the caller's `set -euo pipefail`: every step that may fail is tested explicitly (set -e does
# not apply inside a function called from an `if`), and the setup runs in a subshell; only the final
# export touches the caller's shell.

_mf_engine_ping() {  # $1 = unix socket path; true when the Docker API answers /_ping with OK
  [ -S "$1" ] && [ "$(curl -fsS --max-time 3 --unix-socket "$1" http://d/_ping 2>/dev/null || true)" = "OK" ]
}

_mf_engine_setup() (
  set -euo pipefail
  RUN_DIR="${MESHFILTER_ENGINE_DIR:-/run/meshfilter}"
  SOCK="$RUN_DIR/podman.sock"
  CONF=/etc/containers/containers.conf
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

  missing=()
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if ((${#missing[@]})); then
    echo "container-engine: installing ${missing[*]}" >&2
    $SUDO apt-get update -q >&2 || { echo "container-engine: apt-get update failed" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
      || { echo "container-engine: installing ${missing[*]} failed" >&2; exit 1; }
  fi

  want='[containers]
default_ulimits = ["nofile=1024:1024","nproc=1024:1024"]
[engine]
runtime = "runc"'
  if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$want" ]; then
    echo "container-engine: writing $CONF" >&2
    $SUDO mkdir -p /etc/containers
    if [ -f "$CONF" ] && [ ! -f "$CONF.meshfilter-orig" ]; then $SUDO cp "$CONF" "$CONF.meshfilter-orig"; fi
    { printf '%s\n' "$want" | $SUDO tee "$CONF.tmp" >/dev/null && $SUDO mv "$CONF.tmp" "$CONF"; } \
      || { echo "container-engine: cannot write $CONF" >&2; exit 1; }
  fi

  $SUDO mkdir -p "$RUN_DIR"
  if ! _mf_engine_ping "$SOCK"; then
    pid="$(cat "$RUN_DIR/podman.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "podman" ]; then
      echo "container-engine: podman service (pid $pid) is running but not answering yet" >&2
    else
      echo "container-engine: starting podman system service on $SOCK" >&2
      rm -f "$SOCK"
      $SUDO bash -c "cd / || exit 1; nohup podman system service --time=0 'unix://$SOCK' \
        >>'$RUN_DIR/podman.log' 2>&1 </dev/null & echo \$! >'$RUN_DIR/podman.pid'"
      started="$(cat "$RUN_DIR/podman.pid")"
    fi
    for _ in $(seq 1 150); do
      _mf_engine_ping "$SOCK" && break
      sleep 0.2
    done
    if ! _mf_engine_ping "$SOCK"; then
      echo "container-engine: podman service did not answer on $SOCK; last log lines:" >&2
      tail -n 20 "$RUN_DIR/podman.log" >&2 || true
      exit 1
    fi
    if [ -n "${started:-}" ]; then echo "$started"; fi  # stdout: the PID of what this run started
  fi
)

_mf_engine_main() {
  unset MESHFILTER_ENGINE_STARTED_PID
  local started
  # An existing, working Docker: change nothing.
  if [ -n "${DOCKER_HOST:-}" ]; then
    case "$DOCKER_HOST" in
      unix://*) if _mf_engine_ping "${DOCKER_HOST#unix://}"; then return 0; fi ;;
      *) if [ "$(curl -fsS --max-time 3 "${DOCKER_HOST/tcp:/http:}/_ping" 2>/dev/null || true)" = "OK" ]; then
           return 0; fi ;;
    esac
    echo "container-engine: DOCKER_HOST=$DOCKER_HOST does not answer; setting up Podman instead" >&2
  elif _mf_engine_ping /var/run/docker.sock; then
    return 0
  fi
  started="$(_mf_engine_setup)" || return 1
  export DOCKER_HOST="unix://${MESHFILTER_ENGINE_DIR:-/run/meshfilter}/podman.sock"
  if [ -n "$started" ]; then export MESHFILTER_ENGINE_STARTED_PID="$started"; fi
}

if _mf_engine_main; then
  unset -f _mf_engine_main _mf_engine_setup _mf_engine_ping
else
  unset -f _mf_engine_main _mf_engine_setup _mf_engine_ping
  echo "container-engine: setup failed" >&2
  # shellcheck disable=SC2317  # `return` when sourced, `exit` when run
  return 1 2>/dev/null || exit 1
fi
