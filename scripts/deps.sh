#!/bin/sh
# Installs the Debian packages mod_shmguard needs to build and test, when missing.
# Usage: scripts/deps.sh [test|bench-smoke|bench|package|all]   (as root; otherwise prints the apt-get line)
#   bench-smoke: what `make bench-smoke` (CI) runs; bench adds P8's applications (WordPress on a
#   MariaDB server that bench/sharing.py starts itself), which neither `make test` nor CI needs.
set -eu
what=${1:-test}
pkgs="g++ make pkg-config apache2 apache2-dev apache2-suexec-custom libapache2-mod-fcgid php-cgi php-fpm php-apcu
      libgtest-dev python3 python3-pytest clang libclang-rt-14-dev prometheus procps util-linux iproute2 curl
      python3-yaml man-db icinga2-bin nagios4-core"
case "$what" in
  bench-smoke|bench|all) pkgs="$pkgs wrk libbenchmark-dev strace apache2-utils dokuwiki" ;;
esac
case "$what" in
  # `php` first: it satisfies wordpress's "libapache2-mod-php | php" with the php-cgi/php-fpm
  # above, so apt does not pull in mod_php (which would enable itself in /etc/apache2).
  bench|all) pkgs="$pkgs php wordpress wordpress-theme-twentytwentythree php-mysql mariadb-server mariadb-client" ;;
esac
case "$what" in
  package|all) pkgs="$pkgs build-essential dpkg-dev debhelper lintian" ;;
esac
missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "mod_shmguard needs these Debian packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the packages from starting their services (apache2, php-fpm) on this machine.
rc=/usr/sbin/policy-rc.d
created=""
if [ ! -e "$rc" ]; then printf '#!/bin/sh\nexit 101\n' > "$rc"; chmod +x "$rc"; created=1; fi
apt-get install -y -qq --no-install-recommends $missing || { [ -n "$created" ] && rm -f "$rc"; exit 1; }
[ -n "$created" ] && rm -f "$rc"
exit 0
