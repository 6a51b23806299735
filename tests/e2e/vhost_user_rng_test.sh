#!/bin/bash
# e2e scenario 5: `vireo vhost-user rng` behind QEMU's vhost-user-rng-pci. The guest's
# virtio-rng driver must register our device as the current hw_random source, and reads of
# /dev/hwrng must return data from it.
#
#   vhost_user_rng_test.sh VIREO ARTIFACT_DIR
source "$(dirname "$0")/vhost_user_lib.sh"
vu_setup vhost_user_rng "$1" "$2"

cat >"$VU_DIR/guest.sh" <<'GUEST'
current=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
echo "VIREO-E2E: rng_current: $current"
echo "VIREO-E2E: rng_available: $(cat /sys/class/misc/hw_random/rng_available 2>/dev/null)"
# 4 KiB through the driver; od shows whether it is more than zeros.
bytes=$(dd if=/dev/hwrng bs=512 count=8 2>/dev/null | wc -c)
echo "VIREO-E2E: hwrng bytes: $bytes"
distinct=$(dd if=/dev/hwrng bs=256 count=1 2>/dev/null | od -An -v -tx1 | tr ' ' '\n' | grep . | sort -u | wc -l)
echo "VIREO-E2E: hwrng distinct byte values in 256: $distinct"
case "$current" in virtio_rng*) ;; *) exit 1 ;; esac
[ "$bytes" -eq 4096 ] && [ "$distinct" -gt 64 ]
GUEST
initrd=$(vu_initrd "$VU_DIR/guest.sh")

vu_backend "$VU_DIR/backend.log" rng --socket "$VU_SOCK" --once -v
vu_boot "$VU_DIR/console.log" "$initrd" \
  -chardev "socket,id=vu0,path=$VU_SOCK" -device vhost-user-rng-pci,chardev=vu0
console="$VU_DIR/console.log"
vu_want "$console" "VIREO-E2E: scenario exit 0"
vu_want "$console" "VIREO-E2E: hwrng bytes: 4096"
[[ "$(vu_value "$console" rng_current)" == virtio_rng* ]] ||
  vu_fail "the guest's current rng is '$(vu_value "$console" rng_current)', not virtio_rng"

# --once: the back-end exits 0 by itself once QEMU has gone.
status=0
for ((i = 0; i < 50; i++)); do
  kill -0 "$VU_BACKEND_PID" 2>/dev/null || break
  sleep 0.1
done
wait "$VU_BACKEND_PID" || status=$?
[[ $status -eq 0 ]] || vu_fail "the back-end (--once) exited with status $status, wanted 0"
# The bytes came from our device: its counters (logged at exit with -v) cover the reads.
served=$(sed -n 's/.*rng counters: requests=[0-9]* bytes=\([0-9]*\).*/\1/p' "$VU_DIR/backend.log")
[[ -n "$served" && "$served" -ge 4096 ]] ||
  vu_fail "the back-end served '${served:-no}' bytes of entropy, expected at least 4096"
vu_finish
