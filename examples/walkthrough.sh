#!/usr/bin/env bash
# The blog's walk-through as commands, on a real Docker host, as root.
# Read it before running it: it creates a Docker network and changes DOCKER-USER.
set -euo pipefail

# 1. The network whose containers are filtered, and its gateway (the DNS address they will use).
docker network create on-his-name
GATEWAY=$(docker network inspect on-his-name -f '{{(index .IPAM.Config 0).Gateway}}')

# 2. on-his-name first: it installs the DROP and creates the dnstap socket, owned by CoreDNS's user.
on-his-name --socket-uid "$(id -u coredns)" "example.com." "*.github.com." &

# 3. CoreDNS bound to the gateway, with dnstap (see coredns/Corefile; set `bind` to $GATEWAY).
sed "s/172.18.0.1/$GATEWAY/" coredns/Corefile > /tmp/Corefile.on-his-name
sudo -u coredns coredns -conf /tmp/Corefile.on-his-name &

# 4. An allowed name: the connection goes through.
docker run --rm --network=on-his-name --dns="$GATEWAY" curlimages/curl -sS -o /dev/null -w '%{http_code}\n' https://example.com

# 5. A name that is not allowed: resolved, but the connection times out.
docker run --rm --network=on-his-name --dns="$GATEWAY" curlimages/curl -sS --max-time 5 https://example.org || echo "blocked, as expected"

# 6. A hard-coded address, never resolved: blocked too.
docker run --rm --network=on-his-name curlimages/curl -sS --max-time 5 http://1.1.1.1 || echo "blocked, as expected"

# 7. A container on the default network is not affected.
docker run --rm curlimages/curl -sS -o /dev/null -w '%{http_code}\n' https://example.org

# 8. The counters: per-address ACCEPT rules ahead of the DROP.
iptables -vL DOCKER-USER

# 9. Stop and clean up: rules stay until `on-his-name reset`.
kill %2 %1
on-his-name reset
docker network rm on-his-name
