#!/usr/bin/env bash
# Installs Vireo's build and test dependencies from Debian's archive when any is missing.
# Idempotent and quiet when everything is present, so `make` can call it every time.
set -euo pipefail

packages=(
  cmake ninja-build g++ make pkg-config
  libfmt-dev libcli11-dev libexpected-dev liburing-dev nlohmann-json3-dev
  libcpp-httplib-dev python3-yaml  # the control API (--api-socket) and its test
  libpugixml-dev  # vireo daemon: libvirt domain XML definitions
  libtomlplusplus-dev  # vireo daemon: TOML domain definitions
  nftables dnsmasq-base  # vireo daemon: managed NAT networks (masquerading, DHCP/DNS)
  zlib1g-dev libzstd-dev liblzma-dev  # qcow2 clusters; bzImage payloads unpacked on the host
  libgtest-dev libgmock-dev libbenchmark-dev
  acpica-tools
  clang libclang-rt-14-dev
  iproute2 python3
  qemu-utils
  # The vhost-user e2e suite boots Linux under QEMU TCG (qemu-system-common brings
  # qemu-storage-daemon, the vhost-user-blk peer of `make bench`).
  qemu-system-x86
)
# Extra packages for `make bench` only (the QEMU peer it compares against).
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(qemu-system-x86)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
