#!/bin/sh
# Builds the Debian packages (libapache2-mod-shmguard, shmguard-probe) with Debian's own tooling
# (dpkg-buildpackage, debhelper, dh_apache2) and runs lintian on them.
# Usage: scripts/build-deb.sh [OUTDIR]   (default build/deb; `make deb` runs it)
#
# dpkg-buildpackage writes its results beside the source directory, so the build runs in a copy
# of the tree (the tracked files as they are in the work tree) under OUTDIR/src/; the .deb,
# .changes, .dsc files end up there and OUTDIR/lintian.txt holds lintian's report.
# DEB_BUILD_OPTIONS is passed on (nocheck: skip the unit tests in the package build;
# parallel=N).
set -eu
cd "$(dirname "$0")/.."
out=${1:-build/deb}
version=$(dpkg-parsechangelog -S Version)
src=$out/src/mod-shmguard-$version
rm -rf "$out"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Deleted but still tracked files are skipped.
  git ls-files -z | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$src"
else
  tar --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$src"
fi
(cd "$src" && dpkg-buildpackage -us -uc)
changes=$(ls "$out"/src/mod-shmguard_"$version"_*.changes)
echo "lintian $changes"
status=0
lintian --fail-on error --display-level '>=warning' "$changes" > "$out/lintian.txt" 2>&1 || status=$?
cat "$out/lintian.txt"
if [ "$status" != 0 ]; then
  echo "lintian reports errors (exit $status): see above" >&2
  exit 1
fi
ls -1 "$out"/src/*.deb
