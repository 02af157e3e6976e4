#!/usr/bin/env bash
# Installs the system packages the tests need on a fresh Debian bookworm machine:
# Mesa 25 lavapipe (a software Vulkan driver that Dawn accepts) from bookworm-backports,
# and Debian's chromium for the browser test project. Idempotent.
set -euo pipefail

need_install=0
dpkg -s chromium >/dev/null 2>&1 || need_install=1
# Mesa 22 (bookworm main) is rejected by Dawn; require the backports build (>= 25).
mesa_version=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
case "$mesa_version" in 2[5-9]*|[3-9][0-9]*) ;; *) need_install=1 ;; esac
[ "$need_install" = 0 ] && { echo "system packages present (mesa-vulkan-drivers $mesa_version, chromium)"; exit 0; }

sudo_cmd=""
[ "$(id -u)" = 0 ] || sudo_cmd="sudo"

backports=/etc/apt/sources.list.d/bookworm-backports.sources
if [ ! -f "$backports" ]; then
  # Same archive as the machine's existing Debian entry.
  uri=$(grep -h -m1 -E '^URIs:.*debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}')
  uri=${uri:-http://deb.debian.org/debian}
  $sudo_cmd tee "$backports" >/dev/null <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq -t bookworm-backports --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
$sudo_cmd apt-get install -y -qq --no-install-recommends chromium >/dev/null
mesa_version=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)
case "$mesa_version" in
  2[5-9]*|[3-9][0-9]*) ;;
  *) echo "mesa-vulkan-drivers $mesa_version was installed, but Dawn needs >= 25 (bookworm-backports)" >&2; exit 1 ;;
esac
echo "installed mesa-vulkan-drivers $mesa_version, chromium $(dpkg-query -W -f='${Version}' chromium)"
