#!/usr/bin/env bash
# Builds a local stand-in for node:20-bookworm-slim (no registry is reachable here), so that
# deploy/Dockerfile builds unchanged: a minimal bookworm from the machine's own apt mirror,
# the host's Node and npm, its CA bundle, and a `node` user with uid 1000 like the real image.
# The minimal bookworm is also tagged debian:bookworm-slim, for deploy/nginx/Dockerfile.
# Needs DOCKER_HOST set to the daemon to build in. Does nothing if the images are already there.
set -euo pipefail
# debootstrap lives in /usr/sbin, which a non-login PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

: "${DOCKER_HOST:?set DOCKER_HOST to the private daemon}"
if docker image inspect node:20-bookworm-slim debian:bookworm-slim >/dev/null 2>&1; then exit 0; fi

# The mirror this machine's apt already uses (deb822 .sources or one-line sources.list): never a
# host name written here.
mirror=$(
  {
    for file in /etc/apt/sources.list.d/*.sources; do
      [ -r "$file" ] && awk '
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") print uri }' "$file"
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -r "$file" ] && awk '$1 == "deb" && $3 == "bookworm" { print $2 }' "$file"
    done
  } 2>/dev/null | head -1 || true
)
if [ -z "$mirror" ]; then
  echo "base-image: no bookworm mirror found in /etc/apt/sources.list*" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}
tar -C "$work/rootfs" -c . | docker import - local/bookworm-minbase >/dev/null
docker tag local/bookworm-minbase debian:bookworm-slim

mkdir "$work/context"
cp "$(readlink -f "$(command -v node)")" "$work/context/node"
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
cp -a "$npm_dir" "$work/context/npm"
cp /etc/ssl/certs/ca-certificates.crt "$work/context/ca-certificates.crt"
cat >"$work/context/Dockerfile" <<'DOCKERFILE'
FROM local/bookworm-minbase
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    npm_config_cafile=/etc/ssl/certs/ca-certificates.crt \
    npm_config_update_notifier=false
CMD ["node"]
DOCKERFILE
docker build --network=host -q -t node:20-bookworm-slim "$work/context" >/dev/null
