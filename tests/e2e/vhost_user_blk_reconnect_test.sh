#!/bin/bash
# e2e scenario 6: the back-end is killed (SIGKILL) and restarted while the guest is idle. QEMU's
# chardev has reconnect=1, so it connects to the new back-end, which starts the ring from the
# index QEMU hands it (SET_VRING_BASE). The guest then reads back what it wrote before the
# kill and writes and reads a second pattern; the image must hold it, and the second back-end
# must have served the I/O.
#
#   vhost_user_blk_reconnect_test.sh VIREO ARTIFACT_DIR
source "$(dirname "$0")/vhost_user_lib.sh"
vu_setup vhost_user_blk_reconnect "$1" "$2"

image="$VU_DIR/disk.raw"
truncate -s 32M "$image"

cat >"$VU_DIR/guest.sh" <<'GUEST'
set -e
dd if=/dev/urandom of=/tmp/a bs=1M count=2 2>/dev/null
dd if=/tmp/a of=/dev/vda bs=1M conv=fsync 2>/dev/null
echo "VIREO-E2E: a sha256: $(sha256sum /tmp/a | cut -d' ' -f1)"
echo "VIREO-E2E: idle, restart the back-end now"
# Idle while the host kills and restarts the back-end. I/O issued before the new back-end is
# there waits in the ring, so the length of this pause is not critical.
sleep 6
echo 3 >/proc/sys/vm/drop_caches
echo "VIREO-E2E: a after reconnect: $(dd if=/dev/vda bs=1M count=2 2>/dev/null | sha256sum | cut -d' ' -f1)"
dd if=/dev/urandom of=/tmp/b bs=1M count=2 2>/dev/null
dd if=/tmp/b of=/dev/vda bs=1M seek=8 conv=fsync 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches
echo "VIREO-E2E: b sha256: $(sha256sum /tmp/b | cut -d' ' -f1)"
echo "VIREO-E2E: b readback: $(dd if=/dev/vda bs=1M skip=8 count=2 2>/dev/null | sha256sum | cut -d' ' -f1)"
GUEST
initrd=$(vu_initrd "$VU_DIR/guest.sh")
console="$VU_DIR/console.log"

vu_backend "$VU_DIR/backend1.log" blk --socket "$VU_SOCK" --disk "path=$image" -v
first=$VU_BACKEND_PID
vu_boot "$console" "$initrd" -chardev "socket,id=vu0,path=$VU_SOCK,reconnect=1" \
  -device vhost-user-blk-pci,chardev=vu0,num-queues=1 &
boot=$!
if vu_wait_line "$console" "VIREO-E2E: idle, restart the back-end now" 120; then
  kill -KILL "$first"
  wait "$first" 2>/dev/null || true
  vu_log "killed back-end 1 (pid $first); starting back-end 2"
  # Back-end 2 finds the dead one's socket file and replaces it.
  vu_backend "$VU_DIR/backend2.log" blk --socket "$VU_SOCK" --disk "path=$image" --once -v
  second=$VU_BACKEND_PID
else
  vu_fail "the guest never reached its idle point"
  second=""
fi
# vu_boot ran in a subshell, so its failures did not reach vu_failures: check its status file.
wait "$boot" || true
[[ "$(cat "$console.status" 2>/dev/null)" == 0 ]] ||
  vu_fail "QEMU exit status $(cat "$console.status" 2>/dev/null || echo unknown), wanted 0"
vu_want "$console" "VIREO-E2E: scenario exit 0"
a=$(vu_value "$console" "a sha256")
[[ -n "$a" && "$(vu_value "$console" "a after reconnect")" == "$a" ]] ||
  vu_fail "after the reconnect the guest read back '$(vu_value "$console" "a after reconnect")', wrote '$a'"
b=$(vu_value "$console" "b sha256")
[[ -n "$b" && "$(vu_value "$console" "b readback")" == "$b" ]] || vu_fail "second pattern read back wrong"
host=$(dd if="$image" bs=1M skip=8 count=2 status=none | sha256sum | cut -d' ' -f1)
[[ "$host" == "$b" ]] || vu_fail "the image holds $host at 8 MiB, the guest wrote '$b'"
if [[ -n "$second" ]]; then
  wait "$second" || vu_fail "back-end 2 (--once) exited with status $?"
  grep -q "blk counters: reads=[1-9].* writes=[1-9]" "$VU_DIR/backend2.log" ||
    vu_fail "back-end 2 served no reads and writes: the guest's I/O after the restart went elsewhere"
fi
vu_finish
