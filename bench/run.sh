#!/bin/sh
# mod_shmguard benchmarks (issue 5). Usage: sh bench/run.sh [--smoke] [bench.py options]
#   full run ~15 min (manual: `make bench`); --smoke: tiny sizes, < 60 s, without P8 (CI: `make bench-smoke`).
# Needs root (Apache runs as www-data), `make`, and `sh scripts/deps.sh bench` (smoke: `bench-smoke`).
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
# Micro-benchmarks against the core library (Google Benchmark), and the real sampler loop
# (mod_shmguard/sampler/sampler.cpp, no httpd dependency) driven by bench/sampler_bench.cpp.
stale() {  # stale TARGET FILE...: TARGET missing or older than one of the files
  [ ! -x "$1" ] || [ -n "$(find "$@" -newer "$1" 2>/dev/null | head -1)" ]
}
if stale "$OUT/micro" bench/micro.cpp bench/fixtures.hpp include mod_shmguard/shm \
     "$BUILD/libshmguard_core.a"; then
  echo "bench: building $OUT/micro" >&2
  $CXX -O2 -std=c++17 -Wall -Wextra -Iinclude -Imod_shmguard bench/micro.cpp \
    "$BUILD/libshmguard_core.a" -lbenchmark -lpthread -o "$OUT/micro"
fi
if stale "$OUT/sampler_bench" bench/sampler_bench.cpp bench/fixtures.hpp include mod_shmguard/glue \
     mod_shmguard/sampler "$BUILD/libshmguard_core.a"; then
  echo "bench: building $OUT/sampler_bench" >&2
  $CXX -O2 -g -std=c++17 -Wall -Wextra -Iinclude -Imod_shmguard bench/sampler_bench.cpp \
    mod_shmguard/sampler/sampler.cpp "$BUILD/libshmguard_core.a" -lpthread -o "$OUT/sampler_bench"
fi
"$PYTHON" bench/bench.py --out "$OUT" "$@" || exit $?
# P8: two sites on one budget (DokuWiki + WordPress on a MariaDB the script starts; see
# bench/sharing.py). Only in the full run (no options): not in the smoke run, since it needs
# `scripts/deps.sh bench`'s WordPress and MariaDB, which CI does not install, and takes minutes.
if [ $# -eq 0 ]; then
  SHMGUARD_BUILD=$(cd "$BUILD" && pwd) "$PYTHON" bench/sharing.py --json "$OUT/p8.json" || exit $?
else
  echo "bench: P8 runs in the full run only (alone: $PYTHON bench/sharing.py)" >&2
fi
# P6: keep serving under exhaustion (real DokuWiki, real php-cgi; see bench/serving.py).
SHMGUARD_BUILD=$(cd "$BUILD" && pwd) "$PYTHON" bench/serving.py "$@" || exit $?
# P7: PHP in a memory cgroup (real cgroup v1 groups it makes and removes; see bench/containers.py).
SHMGUARD_BUILD=$(cd "$BUILD" && pwd) exec "$PYTHON" bench/containers.py "$@"
