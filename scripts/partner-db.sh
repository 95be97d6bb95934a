#!/usr/bin/env bash
# A local MariaDB for the examples: the partner's database `partner` and its user `partner`.
#
#   scripts/partner-db.sh [start]   install MariaDB if missing (Debian package), start a server on
#                                   127.0.0.1 with its data in the checkout, create the database
#                                   and user, print the PARTNER_DB_URL to export; a running server
#                                   is reused (run it as often as you like)
#   scripts/partner-db.sh stop      stop that server (the data stays; `start` brings it back)
#
# eval "$(scripts/partner-db.sh)" sets PARTNER_DB_URL in your shell: the export line is the only
# output on stdout, everything else goes to stderr.
# PARTNER_DB_DIR (default: examples/work/mariadb of this checkout) and PARTNER_DB_PORT (default
# 3307, beside a system MariaDB on 3306) choose where it lives. The password is generated once
# and kept in $PARTNER_DB_DIR/password (readable by you only).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${PARTNER_DB_DIR:-$repo/examples/work/mariadb}"
[ ! -d "$dir" ] || dir="$(cd "$dir" && pwd)"
port="${PARTNER_DB_PORT:-3307}"
action="${1:-start}"
socket="$dir/mysqld.sock"
say() { echo "partner-db: $*" >&2; }

find_bin() {  # mariadb binaries live in /usr/sbin or /usr/bin depending on the package version
  local name
  for name in "$@"; do
    command -v "$name" 2>/dev/null && return 0
    [ -x "/usr/sbin/$name" ] && { echo "/usr/sbin/$name"; return 0; }
  done
  return 1
}

admin() { "$(find_bin mariadb-admin mysqladmin)" --no-defaults --socket="$socket" -uroot "$@"; }
running() { [ -S "$socket" ] && admin --connect-timeout=2 ping >/dev/null 2>&1; }

stop() {
  if running; then
    pid="$(cat "$dir/mysqld.pid")"
    admin shutdown
    for _ in $(seq 1 300); do  # the server removes its files after it stops answering
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    say "stopped the server of $dir"
  else
    say "no server running for $dir"
  fi
}

start() {
  "$repo/scripts/system-deps.sh" mariadb-server
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  socket="$dir/mysqld.sock"
  if [ ${#socket} -gt 100 ]; then
    say "the socket path $socket is too long for a Unix socket; set PARTNER_DB_DIR to a shorter folder"
    exit 2
  fi
  as_user=()
  [ "$(id -u)" -ne 0 ] || as_user=(--user=root)
  if [ ! -d "$dir/data/mysql" ]; then
    say "creating the data folder $dir/data"
    "$(find_bin mariadb-install-db mysql_install_db)" --no-defaults --auth-root-authentication-method=normal \
      --datadir="$dir/data" --skip-test-db --skip-name-resolve "${as_user[@]}" >"$dir/install.log" 2>&1 \
      || { say "mariadb-install-db failed; see $dir/install.log"; exit 1; }
  fi
  if running; then
    say "reusing the server running on $dir"
    port="$(cat "$dir/port")"
  else
    say "starting MariaDB on 127.0.0.1:$port (data: $dir/data, log: $dir/error.log)"
    nohup "$(find_bin mariadbd mysqld)" --no-defaults --datadir="$dir/data" --socket="$socket" \
      --port="$port" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$dir/mysqld.pid" \
      --log-error="$dir/error.log" --innodb-buffer-pool-size=128M "${as_user[@]}" \
      >/dev/null 2>&1 </dev/null &
    server=$!
    for _ in $(seq 1 300); do
      running && break
      kill -0 "$server" 2>/dev/null || { say "the server stopped; see $dir/error.log"; exit 1; }
      sleep 0.2
    done
    running || { say "the server did not answer in 60 s; see $dir/error.log"; exit 1; }
    echo "$port" >"$dir/port"
  fi
  if [ ! -s "$dir/password" ]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$dir/password")
  fi
  password="$(cat "$dir/password")"
  "$(find_bin mariadb mysql)" --no-defaults --socket="$socket" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS partner;
CREATE USER IF NOT EXISTS 'partner'@'127.0.0.1' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS 'partner'@'localhost' IDENTIFIED BY '$password';
GRANT ALL ON partner.* TO 'partner'@'127.0.0.1';
GRANT ALL ON partner.* TO 'partner'@'localhost';
SQL
  say "database 'partner', user 'partner' ready; stop the server with: make partner-db-stop"
  echo "export PARTNER_DB_URL='mysql+pymysql://partner:$password@127.0.0.1:$port/partner'"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
