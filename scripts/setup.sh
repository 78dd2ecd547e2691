#!/usr/bin/env bash
# What `npm test` or `npm run demo` needs, installed before it runs (npm's pretest and
# predemo call this): the Debian packages that are missing, the npm dependencies, the
# build. Nothing else on the host changes: apt is kept from starting the services it
# installs, and those it would enable at boot are left disabled, as they were.
#
# Usage: scripts/setup.sh test|demo
# Not root: installs nothing from apt, says what is missing, and still does the npm part.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where Debian keeps iptables, dockerd and unbound; a user's PATH may not have it.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# Each entry is PACKAGE[:COMMAND...], with the commands the suites run from it. A package
# counts as present when its commands are, so another Docker (docker-ce) is never
# replaced. busybox-static is checked as a package: only the static busybox can be the
# lab image's shell, and the Debian busybox is dynamic.
#
# The demo's lab (examples/demo.ts, test/lab/docker-lab.ts): a private dockerd and the
# docker CLI, unbound as the DNS server with dnstap, dig to see it answer, busybox and
# curl for the containers' image, iptables for DOCKER-USER, nsenter, ip and sysctl for
# the namespaces, openssl for the lab internet's certificate.
DEMO=(
  docker.io:dockerd:docker unbound:unbound dnsutils:dig curl:curl busybox-static
  iptables:iptables util-linux:nsenter:setpriv iproute2:ip procps:sysctl openssl:openssl
)
# The whole suite: the demo's, ipset and nftables for those firewall backends, and the
# fstrm and dnstap tools that feed and read dnstap captures.
TEST=("${DEMO[@]}" ipset:ipset nftables:nft fstrm-bin:fstrm_replay:fstrm_capture golang-github-dnstap-golang-dnstap-cli:dnstap)

case "${1:-}" in
  demo) wanted=("${DEMO[@]}") ;;
  test) wanted=("${TEST[@]}") ;;
  *) echo "usage: $0 test|demo" >&2; exit 2 ;;
esac
say() { echo "setup: $*" >&2; }

present() {
  local package=${1%%:*} command
  if [ "$package" = "$1" ]; then
    dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null | grep -q '^ii'
    return
  fi
  local commands=${1#*:}
  for command in ${commands//:/ }; do command -v "$command" >/dev/null || return 1; done
}

missing=()
for entry in "${wanted[@]}"; do present "$entry" || missing+=("${entry%%:*}"); done

# Everything this script made for a while goes at exit, on failure and on Ctrl-C too.
made_policy=
apt_log=
cleanup() {
  if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ -n "$apt_log" ]; then rm -f "$apt_log"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Works without systemd running too (it reads the unit files); no systemctl, no units.
enabled_units() {
  command -v systemctl >/dev/null || return 0
  { systemctl list-unit-files --state=enabled --no-legend 2>/dev/null || true; } | awk '{ print $1 }' | sort
}

install_packages() {
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep apt from starting dockerd, containerd or unbound in this namespace: the suites
  # and the demo start their own, inside network namespaces. (invoke-rc.d and
  # deb-systemd-invoke ask this file; 101 means "not now".)
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# made by on-his-name scripts/setup.sh while apt runs\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local before after
  before=$(enabled_units)
  apt_log=$(mktemp)
  local apt=(apt-get -o DPkg::Lock::Timeout=600 -qq)
  if ! { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    say "apt-get failed (above)"
    exit 1
  fi
  # What the packages enabled at boot (docker, containerd, unbound) stays disabled, as before.
  after=$(enabled_units)
  local enabled
  enabled=$(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')
  if [ -n "${enabled// /}" ]; then
    # shellcheck disable=SC2086 # one unit per word
    if systemctl disable --quiet $enabled; then
      say "left disabled at boot, as before: $enabled(systemctl enable --now UNIT to run one)"
    else
      say "could not disable at boot what apt enabled: $enabled"
    fi
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "not root, so not installing the missing Debian packages: ${missing[*]}"
    if [ "$1" = demo ]; then say "the demo needs them, and root: sudo npm run demo"; else say "the suites that need them (and root) will skip; sudo npm test installs them"; fi
  elif ! command -v apt-get >/dev/null; then
    say "no apt-get here: install these yourself (Debian names): ${missing[*]}"
  else
    install_packages
  fi
fi

# npm ci when node_modules is missing or older than the lock file (npm writes
# node_modules/.package-lock.json at every install). Its prepare script builds.
if [ ! -e node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
else
  npm run build --silent
fi
