#!/bin/bash
# e2e scenario 2: `vireo vhost-user blk` on a qcow2 image whose backing file is raw, made by
# qemu-img (the reference implementation). Boot 1 checks that the guest sees the backing file's
# data, makes an ext2 filesystem, copies files with a checksum manifest, unmounts and reboots
# (a guest reboot inside the same QEMU, so the vhost-user device is stopped and started again).
# Boot 2 mounts the filesystem and verifies every file against the manifest. Afterwards
# `qemu-img check` must find the image clean, and the backing file must be unchanged.
#
#   vhost_user_blk_qcow2_test.sh VIREO ARTIFACT_DIR
source "$(dirname "$0")/vhost_user_lib.sh"
vu_setup vhost_user_blk_qcow2 "$1" "$2"
if ! command -v qemu-img >/dev/null; then
  echo "SKIP: vhost_user_blk_qcow2 needs qemu-img (scripts/install-deps.sh installs qemu-utils)"
  exit 77
fi

base="$VU_DIR/base.raw"
top="$VU_DIR/top.qcow2"
dd if=/dev/urandom of="$base" bs=1M count=1 status=none
truncate -s 64M "$base"
base_sha=$(sha256sum "$base" | cut -d' ' -f1)
backing_sha=$(dd if="$base" bs=1M count=1 status=none | sha256sum | cut -d' ' -f1)
qemu-img create -q -f qcow2 -b "$base" -F raw "$top" 64M

sed "s/@BACKING_SHA@/$backing_sha/" >"$VU_DIR/guest.sh" <<'GUEST'
set -e
mkdir -p /mnt
if mount -t ext2 -o ro /dev/vda /mnt 2>/dev/null && [ -f /mnt/manifest ]; then
  echo "VIREO-E2E: boot: 2"
  cd /mnt
  sha256sum -c manifest >/tmp/check 2>&1 || { cat /tmp/check; exit 1; }
  echo "VIREO-E2E: files verified: $(wc -l <manifest)"
  cd /
  umount /mnt
  exit 0
fi
umount /mnt 2>/dev/null || true
echo "VIREO-E2E: boot: 1"
echo "VIREO-E2E: backing data: $(dd if=/dev/vda bs=1M count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
[ "$(dd if=/dev/vda bs=1M count=1 2>/dev/null | sha256sum | cut -d' ' -f1)" = @BACKING_SHA@ ]
mke2fs -q /dev/vda
mount -t ext2 /dev/vda /mnt || mount -t ext4 /dev/vda /mnt
mkdir /mnt/dir
cp /bin/busybox /mnt/dir/busybox
dd if=/dev/urandom of=/mnt/dir/random bs=1k count=3000 2>/dev/null
cp -r /lib/modules /mnt/modules
(cd /mnt && find dir modules -type f | sort | xargs sha256sum >/mnt/manifest)
echo "VIREO-E2E: files written: $(wc -l </mnt/manifest)"
umount /mnt
sync
echo "VIREO-E2E: rebooting"
reboot -f
GUEST
initrd=$(vu_initrd "$VU_DIR/guest.sh")

vu_backend "$VU_DIR/backend.log" blk --socket "$VU_SOCK" --disk "path=$top,format=qcow2" --once -v
vu_boot "$VU_DIR/console.log" "$initrd" --reboot \
  -chardev "socket,id=vu0,path=$VU_SOCK" -device vhost-user-blk-pci,chardev=vu0,num-queues=1
console="$VU_DIR/console.log"
vu_want "$console" "VIREO-E2E: boot: 1"
vu_want "$console" "VIREO-E2E: backing data: $backing_sha"
vu_want "$console" "VIREO-E2E: rebooting"
vu_want "$console" "VIREO-E2E: boot: 2"
vu_want "$console" "VIREO-E2E: scenario exit 0"
written=$(vu_value "$console" "files written")
[[ -n "$written" && "$written" -gt 2 && "$(vu_value "$console" "files verified")" == "$written" ]] ||
  vu_fail "boot 2 verified '$(vu_value "$console" "files verified")' of '$written' files"
wait "$VU_BACKEND_PID" || vu_fail "the back-end (--once) exited with status $?"
if ! qemu-img check -f qcow2 "$top" >"$VU_DIR/qemu-img-check.log" 2>&1; then
  vu_fail "qemu-img check: $(tr '\n' ' ' <"$VU_DIR/qemu-img-check.log")"
fi
[[ "$(sha256sum "$base" | cut -d' ' -f1)" == "$base_sha" ]] || vu_fail "the backing file changed"
vu_finish
