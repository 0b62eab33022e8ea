#!/usr/bin/env bash
# Build and install TimescaleDB 2.28.3 into the system PostgreSQL 15 (the last release line
# that supports PostgreSQL 15), with the patches in scripts/timescaledb-patches/, unless that
# build is installed already (a marker file beside the extension records the patches).
#
# Source, first found: $SUHO_TIMESCALEDB_SOURCE (a tarball), the vendored tarball beside
# this project's team folder, else the official repository's tag (needs git and network).
# As root it installs the Debian build packages it needs; otherwise it names them and stops.
# One progress line on the terminal; the full log goes to $SUHO_TIMESCALEDB_LOG.
set -euo pipefail

VERSION=2.28.3
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
LOG=${SUHO_TIMESCALEDB_LOG:-${TMPDIR:-/tmp}/suho-timescaledb-build.log}
here=$(cd "$(dirname "$0")/.." && pwd)

patches_dir="$here/scripts/timescaledb-patches"
marker() { echo "$("$PG_CONFIG" --sharedir)/extension/timescaledb.suho-build"; }
# What this script would install: the version and the checksum of every patch.
build_id() {
    echo "timescaledb $VERSION"
    (cd "$patches_dir" && sha256sum -- *.patch 2>/dev/null) || true
}

installed_version() {
    local control
    control="$("$PG_CONFIG" --sharedir)/extension/timescaledb.control"
    [ -f "$control" ] && sed -n "s/^default_version = '\(.*\)'/\1/p" "$control"
}

if [ ! -x "$PG_CONFIG" ]; then
    echo "TimescaleDB: no PostgreSQL 15 at $PG_CONFIG (install the Debian package postgresql-15)" >&2
    exit 1
fi
if [ "$(installed_version || true)" = "$VERSION" ] \
    && [ -f "$("$PG_CONFIG" --pkglibdir)/timescaledb-$VERSION.so" ] \
    && [ "$(cat "$(marker)" 2>/dev/null)" = "$(build_id)" ]; then
    exit 0
fi

packages=(postgresql-server-dev-15 cmake gcc make libssl-dev patch)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "TimescaleDB $VERSION needs these packages to build: ${missing[*]}" >&2
        echo "Install them (sudo apt-get install ${missing[*]}) and run make again." >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$(id -u)" -ne 0 ] && [ ! -w "$("$PG_CONFIG" --pkglibdir)" ]; then
    echo "TimescaleDB $VERSION: installing into $("$PG_CONFIG" --pkglibdir) needs root" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/suho-timescaledb.XXXXXX")
trap 'rm -rf "$work"' EXIT
: > "$LOG"

source_tarball=""
for candidate in "${SUHO_TIMESCALEDB_SOURCE:-}" \
                 "$here/../shared/vendor/timescaledb-$VERSION.tar.gz"; do
    if [ -n "$candidate" ] && [ -f "$candidate" ]; then source_tarball=$candidate; break; fi
done

start=$(date +%s)
echo "TimescaleDB $VERSION: building from ${source_tarball:-the official repository} (about 3 minutes; log: $LOG)"
if [ -n "$source_tarball" ]; then
    tar -xzf "$source_tarball" -C "$work"
    src=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)
else
    git clone --quiet --depth 1 --branch "$VERSION" \
        https://github.com/timescale/timescaledb.git "$work/timescaledb" >>"$LOG" 2>&1
    src="$work/timescaledb"
fi
(
    cd "$src"
    for p in "$patches_dir"/*.patch; do
        [ -e "$p" ] || continue
        echo "applying $(basename "$p")"
        patch -p1 --forward < "$p"
    done
    ./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
        -DCMAKE_BUILD_TYPE=Release -DGENERATE_DOWNGRADE_SCRIPT=OFF -DPG_CONFIG="$PG_CONFIG"
    make -C build -j"$(nproc)"
    make -C build install
) >>"$LOG" 2>&1 || { echo "TimescaleDB $VERSION: build failed; the last lines of $LOG:" >&2; tail -n 20 "$LOG" >&2; exit 1; }
build_id > "$(marker)"
echo "TimescaleDB $VERSION: installed in $(( $(date +%s) - start )) s"
