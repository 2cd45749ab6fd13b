#!/bin/sh
# mod_shmguard benchmarks (issue 5). Usage: sh bench/run.sh [--smoke] [bench.py options]
#   full run ~10 min (manual: `make bench`); --smoke: tiny sizes, < 60 s (CI: `make bench-smoke`).
# Needs root (Apache runs as www-data), `make`, and `sh scripts/deps.sh bench`.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUT=$BUILD/bench
PYTHON=${PYTHON:-/usr/bin/python3}
CXX=${CXX:-g++}
for f in "$BUILD/libshmguard_core.a" "$BUILD/mod_shmguard.so"; do
  [ -f "$f" ] || { echo "bench: $f missing; run make first" >&2; exit 1; }
done
mkdir -p "$OUT"
# Micro-benchmarks against the core library (Google Benchmark).
if [ ! -x "$OUT/micro" ] || [ -n "$(find bench/micro.cpp include mod_shmguard/glue/shm_layout.hpp \
     "$BUILD/libshmguard_core.a" -newer "$OUT/micro" 2>/dev/null | head -1)" ]; then
  echo "bench: building $OUT/micro" >&2
  $CXX -O2 -std=c++17 -Wall -Wextra -Iinclude -Imod_shmguard/glue bench/micro.cpp \
    "$BUILD/libshmguard_core.a" -lbenchmark -lpthread -o "$OUT/micro"
fi
exec "$PYTHON" bench/bench.py --out "$OUT" "$@"
