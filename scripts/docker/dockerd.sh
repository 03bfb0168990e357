#!/usr/bin/env bash
# A private Docker daemon for the deploy tests: its own socket, data and exec roots, no bridge
# and no iptables, so it leaves the host's network as it is (builds and containers run with
# --network=host, or none). It never talks to, or stops, any other dockerd on the machine.
#   scripts/docker/dockerd.sh start DIR   # prints the DOCKER_HOST to use
#   scripts/docker/dockerd.sh stop DIR    # stops it (and its containerd) and removes DIR
set -euo pipefail
# dockerd lives in /usr/sbin, which a non-login PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

command=${1:?usage: dockerd.sh start|stop DIR}
dir=${2:?usage: dockerd.sh start|stop DIR}
docker_host="unix://$dir/docker.sock"

case "$command" in
  start)
    mkdir -p "$dir/data" "$dir/exec"
    dockerd --host "$docker_host" --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
      --bridge=none --iptables=false >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 1 120); do
      if DOCKER_HOST="$docker_host" docker info >/dev/null 2>&1; then
        echo "$docker_host"
        exit 0
      fi
      sleep 0.5
    done
    echo "dockerd did not start; its log:" >&2
    tail -20 "$dir/dockerd.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$dir/docker.pid" ]; then
      pid=$(cat "$dir/docker.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
      done
    fi
    # The daemon leaves some mounts behind (its default netns, for one): unmount what lies under
    # DIR, deepest first, and only that, before removing it.
    awk -v prefix="$dir/" 'index($2, prefix) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mount; do
      umount -l "$mount" 2>/dev/null || true
    done
    rm -rf "$dir"
    ;;
  *)
    echo "usage: dockerd.sh start|stop DIR" >&2
    exit 2
    ;;
esac
