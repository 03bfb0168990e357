#!/bin/sh
# Container entry point: size Node's heap from the container's memory limit, then become mcpd
# (exec, so mcpd is PID 1 and receives the stop signal itself).
set -eu

limit=""
for file in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
  [ -r "$file" ] || continue
  value=$(cat "$file")
  case "$value" in
    '' | max | *[!0-9]*) ;;
    *) limit=$value; break ;;
  esac
done

# A cgroup "limit" above 2^60 means none. Otherwise give the V8 old space MCPD_HEAP_PERCENT (75)
# of it and leave the rest for buffers, code and the young generation, so a large read makes
# the heap collect garbage instead of the kernel killing the container.
if [ -n "$limit" ] && [ "$limit" -lt 1152921504606846976 ]; then
  # In MiB before the percentage, so the product cannot overflow.
  # shellcheck disable=SC2017
  heap_mb=$((limit / 1048576 * ${MCPD_HEAP_PERCENT:-75} / 100))
  [ "$heap_mb" -lt 64 ] && heap_mb=64
  case " ${NODE_OPTIONS:-} " in
    *--max-old-space-size*) ;;
    *) export NODE_OPTIONS="--max-old-space-size=$heap_mb ${NODE_OPTIONS:-}" ;;
  esac
fi

exec node /app/dist/main.js "$@"
