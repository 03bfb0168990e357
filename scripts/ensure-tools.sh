#!/usr/bin/env bash
# Installs the real components the tests run against (Debian packages), when they are missing.
# npm test runs this first; on a machine that already has them it does nothing.
set -euo pipefail

declare -A PACKAGE_OF=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [openssl]=openssl
  [nginx]=nginx
  [dockerd]=docker.io
  [docker]=docker.io
  [docker-compose]=docker-compose
  [debootstrap]=debootstrap
)

missing=()
for command in "${!PACKAGE_OF[@]}"; do
  # nginx lives in /usr/sbin, which a non-login shell's PATH may lack.
  command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] || missing+=("${PACKAGE_OF[$command]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "ensure-tools: missing $packages and not root; install them with apt-get" >&2
    exit 1
  fi
else
  SUDO=
fi
echo "ensure-tools: installing $packages" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $packages >/dev/null
