#!/usr/bin/env bash
# Installs Debian packages vfl runs for real, only when they are missing. Needs root or sudo.
#   scripts/system-deps.sh                  what the test suite uses: MariaDB server, ZooKeeper (the
#                                           serving registry), Chromium, Prometheus, and Docker,
#                                           docker-compose and mmdebstrap for the container tests
#   scripts/system-deps.sh mariadb-server   only the packages named
set -euo pipefail
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(mariadb-server zookeeper chromium prometheus docker.io docker-compose mmdebstrap)
missing=()
for package in "${wanted[@]}"; do
  case "$package" in
    mariadb-server) command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=("$package") ;;
    zookeeper) [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1 || missing+=("$package") ;;
    chromium) command -v chromium >/dev/null 2>&1 || missing+=("$package") ;;
    prometheus) command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || missing+=("$package") ;;
    docker.io) command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || missing+=("$package") ;;
    docker-compose) command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=("$package") ;;
    mmdebstrap) command -v mmdebstrap >/dev/null 2>&1 || missing+=("$package") ;;
    *) echo "system-deps.sh: unknown package '$package' (known: mariadb-server, zookeeper, chromium, prometheus, docker.io, docker-compose, mmdebstrap)" >&2; exit 2 ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}" >&2
$sudo apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
