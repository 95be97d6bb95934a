#!/bin/sh
# The official MariaDB image's start-up, reduced to what deploy/compose.yaml uses: on an empty
# data directory, create MARIADB_DATABASE and MARIADB_USER (password MARIADB_PASSWORD, from any
# host); then run mariadbd with the given options.
set -eu
if [ "${1#-}" != "$1" ]; then
    set -- mariadbd "$@"
fi
if [ "$1" = mariadbd ] && [ ! -d /var/lib/mysql/mysql ]; then
    : "${MARIADB_DATABASE:?}" "${MARIADB_USER:?}" "${MARIADB_PASSWORD:?}"
    mariadb-install-db --datadir=/var/lib/mysql --skip-test-db --auth-root-authentication-method=socket >/dev/null
    password=$(printf '%s' "$MARIADB_PASSWORD" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g")
    mariadbd --datadir=/var/lib/mysql --bootstrap --skip-networking <<SQL
FLUSH PRIVILEGES;
CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;
CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '$password';
GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';
SQL
fi
exec "$@"
