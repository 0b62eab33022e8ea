#!/usr/bin/env bash
# Make sure the system packages the tests need are present:
#   PostgreSQL server binaries (Debian: postgresql), nats-server, redis-server (the cache
#   tier's test server), Node.js + npm, Python's venv module (Debian: python3-venv), g++ (the
#   MQL5 EA's tests compile it with g++; gcc brings the sanitizer runtimes);
#   for the scale-out tests (docs/operations.md): haproxy, patroni (with python3-etcd, its
#   etcd client), etcd-server and etcd-client, pgbouncer.
# As root, install what is missing with apt-get; otherwise name the packages and stop.
set -euo pipefail

# haproxy and pgbouncer live in /usr/sbin, which is not on every user's PATH.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=()
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 \
    || missing+=(postgresql)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
have redis-server || missing+=(redis-server)
have haproxy || missing+=(haproxy)
have patroni || missing+=(patroni)
# Patroni runs on the system's Python and reaches etcd (v3) through python3-etcd.
/usr/bin/python3 -c "import etcd" >/dev/null 2>&1 || missing+=(python3-etcd)
have etcd || missing+=(etcd-server)
have etcdctl || missing+=(etcd-client)
have pgbouncer || missing+=(pgbouncer)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
"${PYTHON:-python3}" -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
# PostgreSQL refuses to run as root: as root the tests start it as the `postgres` user,
# which the Debian package creates.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    [[ " ${missing[*]} " == *" postgresql "* ]] || missing+=(postgresql)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "Missing system packages: ${missing[*]}" >&2
    echo "Install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and run make again." >&2
    exit 1
fi

echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
