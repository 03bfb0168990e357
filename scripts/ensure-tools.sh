#!/usr/bin/env bash
# Installs the real components the tests run against (Debian packages), when they are missing.
# npm test runs this first; on a machine that already has them it does nothing.
set -euo pipefail

declare -A PACKAGE_OF=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [openssl]=openssl
  [nginx]=nginx
  [dockerd]=docker.io
  [docker]=docker.io
  [docker-compose]=docker-compose
  [debootstrap]=debootstrap
  [redis-server]=redis-server
  [redis-cli]=redis-tools
)

missing=()
for command in "${!PACKAGE_OF[@]}"; do
  # The daemons (nginx, dockerd) and debootstrap live in /usr/sbin, which a non-login PATH may lack.
  command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] || missing+=("${PACKAGE_OF[$command]}")
done
# PostgreSQL's server binaries live in a versioned directory, on no PATH.
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "ensure-tools: missing ${packages[*]} and not root; install them with apt-get" >&2
  exit 1
fi
echo "ensure-tools: installing ${packages[*]}" >&2
"${as_root[@]}" apt-get update -qq
# Through env: sudo would drop a variable set in front of it.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null
