#!/bin/bash
# Builds the artifacts for the end-to-end Linux guest from Debian's own packages:
#
#   OUTDIR/vmlinuz            the kernel of the newest linux-image-6.1.0-N-amd64 package
#   OUTDIR/initramfs.cpio.gz  busybox-static, the requested kernel modules and an /init that
#                             prints the VIREO-E2E lines below and powers off
#   OUTDIR/kernel-release     the kernel's `uname -r`, e.g. 6.1.0-56-amd64
#   OUTDIR/modules.load       the modules /init loads, in load order (paths under /lib/modules/R/)
#   OUTDIR/busybox            the static busybox, for the host side of tests (cpio, nc, ...)
#   OUTDIR/debs/              the downloaded .deb files (a cache; delete to fetch again)
#
#   linux-guest.sh [--modules "NAME..."] [--refresh] OUTDIR
#
#   --modules "NAME..."  modules to put in the initramfs, with everything they depend on
#                        (resolved through modules.dep); names may use - or _; default:
#                        $DEFAULT_MODULES. Built-in ones are skipped; unknown ones are an error.
#   --refresh            rebuild even when OUTDIR holds artifacts from an identical recipe
#   VIREO_E2E_KERNEL_PKG pins the kernel package (default: the newest 6.1.0-N-amd64 apt knows)
#
# The guest's /init mounts proc, sys and dev, then prints on the console:
#   VIREO-E2E: init reached
#   VIREO-E2E: uname -r: <release>
#   VIREO-E2E: nproc: <online CPUs>
#   VIREO-E2E: module <name>: loaded|FAILED          (one per module in modules.load)
#   VIREO-E2E: modules loaded: <ok>/<total>
#   (when the initramfs holds /scenario.sh: its output, then)
#   VIREO-E2E: scenario exit <status>
#   VIREO-E2E: powering off
# and runs `poweroff -f`. Kernel console messages are turned down to KERN_EMERG first, so the
# lines are not interleaved with printk output.
#
# Scenario hook: a test appends a second cpio holding /scenario.sh to initramfs.cpio.gz (the
# kernel unpacks concatenated archives in order; vhost_user_lib.sh does this), and /init runs it
# with sh after loading the modules, before powering off.
#
# Artifacts are re-used when OUTDIR/stamp matches this script, the module list and the pin, so
# a second run needs no network. Nothing is installed on the host: packages are fetched with
# `apt-get download` and unpacked with `dpkg-deb -x`; the initramfs is packed with the
# downloaded busybox's own cpio, and modules.dep is made with its depmod.
set -euo pipefail

# ext4 (which mounts the ext2 that busybox's mke2fs makes) and crc32c for the filesystem
# scenarios of the vhost-user tests.
DEFAULT_MODULES="virtio_pci virtio_mmio virtio_blk virtio_net virtio_console virtio_rng ext4 crc32c_generic"

die() {
  echo "linux-guest.sh: error: $*" >&2
  exit 1
}
log() { echo "linux-guest.sh: $*" >&2; }

modules=$DEFAULT_MODULES
refresh=0
out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --modules) [[ $# -ge 2 ]] || die "--modules needs a value"; modules=$2; shift 2 ;;
    --refresh) refresh=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [[ -z "$out" ]] || die "more than one OUTDIR given"; out=$1; shift ;;
  esac
done
[[ -n "$out" ]] || die "usage: linux-guest.sh [--modules \"NAME...\"] [--refresh] OUTDIR"

for tool in apt-get apt-cache dpkg-deb gzip flock sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found; this script needs a Debian-like host"
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
# One builder at a time per OUTDIR (CTest may run several e2e tests at once).
exec 9>"$out/.lock"
flock 9

# --- Re-use ---------------------------------------------------------------------------------
script_hash=$(sha256sum "$0" | cut -d' ' -f1)
stamp_want="recipe=$script_hash modules=$modules pin=${VIREO_E2E_KERNEL_PKG:-}"
if [[ $refresh -eq 0 && -f "$out/stamp" && -s "$out/vmlinuz" && -s "$out/initramfs.cpio.gz" && -f "$out/busybox" &&
      -s "$out/kernel-release" && "$(<"$out/stamp")" == "$stamp_want" ]]; then
  log "re-using $out (kernel $(<"$out/kernel-release"))"
  exit 0
fi
rm -f "$out/stamp"

# --- Pick the packages ----------------------------------------------------------------------
apt_lists_empty() {
  ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}
if apt_lists_empty; then
  if [[ $EUID -eq 0 ]]; then
    log "apt package lists are empty; running apt-get update"
    apt-get update -q >&2 || die "apt-get update failed (network or /etc/apt/sources.list?)"
  else
    die "apt package lists are empty; run 'sudo apt-get update' first"
  fi
fi

newest_kernel_pkg() {
  # Signed and unsigned images carry the same kernel; prefer the plain (signed) name.
  apt-cache pkgnames linux-image-6.1.0- |
    grep -E '^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' |
    sed -E 's/^(.*)-unsigned$/\1 1 &/; t; s/^.*$/& 2 &/' |
    sort -k1,1V -k2,2n | tail -n 1 | cut -d' ' -f3 || true
}
kernel_pkg=${VIREO_E2E_KERNEL_PKG:-$(newest_kernel_pkg)}
[[ -n "$kernel_pkg" ]] ||
  die "apt knows no linux-image-6.1.0-*-amd64 package (is this Debian 12 with 'main' enabled?)"

debs="$out/debs"
mkdir -p "$debs"
fetch() { # fetch PACKAGE -> prints the .deb path
  local pkg=$1 deb
  deb=$(compgen -G "$debs/${pkg}_*.deb" | head -n 1 || true)
  if [[ -z "$deb" ]]; then
    log "downloading $pkg"
    local sandbox=()
    # As root apt drops to _apt for the download, which cannot write an arbitrary OUTDIR.
    [[ $EUID -eq 0 ]] && sandbox=(-o APT::Sandbox::User=root)
    if ! (cd "$debs" && apt-get download -q "${sandbox[@]}" "$pkg" >&2); then
      die "'apt-get download $pkg' failed; check the network and apt sources" \
        "(or pin another kernel with VIREO_E2E_KERNEL_PKG=linux-image-6.1.0-N-amd64)"
    fi
    deb=$(compgen -G "$debs/${pkg}_*.deb" | head -n 1 || true)
    [[ -n "$deb" ]] || die "apt-get download $pkg left no ${pkg}_*.deb in $debs"
  fi
  echo "$deb"
}
kernel_deb=$(fetch "$kernel_pkg")
busybox_deb=$(fetch busybox-static)
# Keep one kernel in the cache.
for old in "$debs"/linux-image-*.deb; do
  [[ "$old" == "$kernel_deb" ]] || rm -f "$old"
done

# --- Unpack ---------------------------------------------------------------------------------
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "unpacking $(basename "$kernel_deb")"
dpkg-deb -x "$kernel_deb" "$work/kernel" || die "cannot unpack $kernel_deb (delete it and retry)"
dpkg-deb -x "$busybox_deb" "$work/busybox" || die "cannot unpack $busybox_deb (delete it and retry)"

busybox="$work/busybox/bin/busybox"
[[ -x "$busybox" ]] || die "no bin/busybox in $busybox_deb"
vmlinuz=$(compgen -G "$work/kernel/boot/vmlinuz-*" | head -n 1 || true)
[[ -n "$vmlinuz" ]] || die "no boot/vmlinuz-* in $kernel_deb"
release=${vmlinuz##*/vmlinuz-}
moddir="$work/kernel/lib/modules/$release"
[[ -d "$moddir" ]] || die "no lib/modules/$release in $kernel_deb"

# Debian generates modules.dep in the package's postinst; do the same with busybox's depmod.
[[ -f "$moddir/modules.dep" ]] || "$busybox" depmod -b "$work/kernel" "$release"

# --- Resolve modules and their dependencies (dependencies first) -----------------------------
declare -A dep_of=() path_of=() state=()
while IFS= read -r line; do
  mod=${line%%:*}
  name=${mod##*/}
  name=${name%%.ko*}
  name=${name//-/_}
  path_of[$name]=$mod
  dep_of[$mod]=${line#*:}
done <"$moddir/modules.dep"

load_order=()
visit() { # visit MODPATH: appends MODPATH after its dependencies
  local mod=$1 dep
  case "${state[$mod]:-}" in
    "done") return ;;
    active) die "dependency loop in modules.dep at $mod" ;;
  esac
  state[$mod]=active
  # shellcheck disable=SC2086 # a space-separated list
  for dep in ${dep_of[$mod]}; do
    [[ -n "${dep_of[$dep]+x}" ]] || die "modules.dep names $dep (needed by $mod) but has no entry"
    visit "$dep"
  done
  state[$mod]="done"
  load_order+=("$mod")
}
for want in $modules; do
  key=${want//-/_}
  if [[ -n "${path_of[$key]:-}" ]]; then
    visit "${path_of[$key]}"
  elif grep -Eq "/${key//_/[-_]}\.ko" "$moddir/modules.builtin"; then
    log "module $want is built into $release; nothing to copy"
  else
    die "module $want is neither a module nor built into $release"
  fi
done

# --- Initramfs ------------------------------------------------------------------------------
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,root,etc} "$root/lib/modules/$release"
ln -s bin "$root/sbin"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [[ "$applet" == busybox ]] || ln -sf busybox "$root/bin/$applet"
done
for mod in "${load_order[@]}"; do
  mkdir -p "$root/lib/modules/$release/$(dirname "$mod")"
  case "$mod" in
    *.ko) cp "$moddir/$mod" "$root/lib/modules/$release/$mod" ;;
    *) die "compressed module $mod: busybox insmod cannot load it; teach this script to unpack" ;;
  esac
done
printf '%s\n' "${load_order[@]}" >"$root/lib/modules/$release/modules.load"

cat >"$root/init" <<'EOF'
#!/bin/sh
# Vireo end-to-end guest init; generated by tests/e2e/linux-guest.sh, which documents the output.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1
# Only KERN_EMERG on the console from here on, so our lines come out whole.
echo "1 4 1 7" >/proc/sys/kernel/printk
echo "VIREO-E2E: init reached"
echo "VIREO-E2E: uname -r: $(uname -r)"
echo "VIREO-E2E: nproc: $(nproc)"
dir=/lib/modules/$(uname -r)
ok=0
total=0
if [ -f "$dir/modules.load" ]; then
  while read -r mod; do
    [ -n "$mod" ] || continue
    total=$((total + 1))
    name=${mod##*/}
    if insmod "$dir/$mod"; then
      ok=$((ok + 1))
      echo "VIREO-E2E: module ${name%.ko}: loaded"
    else
      echo "VIREO-E2E: module ${name%.ko}: FAILED"
    fi
  done <"$dir/modules.load"
fi
echo "VIREO-E2E: modules loaded: $ok/$total"
if [ -f /scenario.sh ]; then
  status=0
  sh /scenario.sh || status=$?
  echo "VIREO-E2E: scenario exit $status"
fi
echo "VIREO-E2E: powering off"
poweroff -f
echo "VIREO-E2E: poweroff -f returned"
sleep 5
EOF
chmod 0755 "$root/init"

log "packing initramfs (${#load_order[@]} modules)"
(cd "$root" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) |
  gzip -9n >"$work/initramfs.cpio.gz"

# --- Publish (stamp last, so an interrupted run is rebuilt) --------------------------------
cp "$vmlinuz" "$work/vmlinuz"
echo "$release" >"$work/kernel-release"
cp "$root/lib/modules/$release/modules.load" "$work/modules.load"
cp "$busybox" "$work/busybox.host"
for f in vmlinuz initramfs.cpio.gz kernel-release modules.load; do
  mv -f "$work/$f" "$out/$f"
done
rm -rf "$out/busybox"
mv -f "$work/busybox.host" "$out/busybox"
echo "$stamp_want" >"$out/stamp"
log "built $out: kernel $release ($kernel_pkg), vmlinuz $(stat -c %s "$out/vmlinuz") bytes," \
  "initramfs.cpio.gz $(stat -c %s "$out/initramfs.cpio.gz") bytes"
