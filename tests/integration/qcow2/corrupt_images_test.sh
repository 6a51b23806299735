#!/usr/bin/env bash
# Corrupt images: corrupt.py damages copies of valid qemu-img images in one named way each.
# For every case, Vireo must
#   - fail with an error (exit 1 from qcow2_driver), never crash or trip a sanitizer;
#   - name the problem: the message matches the case's keywords (all of them, ';'-separated,
#     case-insensitive) on open or on the first read/write touching the damage;
#   - leave the file byte-for-byte unchanged (sha256), also when opened read-write and asked
#     to write into the damaged range.
# Actions: both = read-only open+read and read-write open+write must each fail;
#          rw = only the read-write attempt must fail (the damage is in what writes use), the
#               read-only one may succeed; snapshot = taking a snapshot must fail.
# Usage: corrupt_images_test.sh QCOW2_DRIVER
source "$(dirname "$0")/lib.sh"
SIZE=$((16 << 20))

qemu-img create -q -f qcow2 -o compat=1.1 "$WORK/v3.qcow2" "$SIZE"
qemu-io -f qcow2 -c "write -P 0x11 0 1M" -c "write -P 0x22 8M 64k" "$WORK/v3.qcow2" >/dev/null
qemu-img create -q -f qcow2 -o compat=0.10 "$WORK/v2.qcow2" "$SIZE"
qemu-io -f qcow2 -c "write -P 0x11 0 1M" -c "write -P 0x22 8M 64k" "$WORK/v2.qcow2" >/dev/null
qemu-img convert -q -c -O qcow2 "$WORK/v3.qcow2" "$WORK/comp.qcow2"
qemu-img create -q -f qcow2 -o extended_l2=on "$WORK/extl2.qcow2" "$SIZE"
for b in v3 v2 comp extl2; do qcheck "$WORK/$b.qcow2" || fail "set-up: base image $b is not clean"; done

# case | base image | keywords | action
CASES=(
  "l1_past_eof|v3|L1|both"
  "l1_unaligned|v3|L1;align|both"
  "l1_unaligned|v2|L1;align|both"
  "l1_overlaps_header|v3|L1;overlap|header|both"
  "huge_l1_size|v3|L1|both"
  "l1_too_small|v3|L1|both"
  "l2_unaligned|v3|L2;align|both"
  "l2_past_eof|v3|L2|both"
  "l2_overlaps_refcount_table|v3|L2|overlap|both"
  "l2_entry_past_eof|v3|past|beyond|end of|eof|outside|exceed|both"
  "l2_entry_past_eof|v2|past|beyond|end of|eof|outside|exceed|both"
  "l2_entry_unaligned|v3|align|both"
  "compressed_past_eof|comp|compress|past|beyond|end of|eof|outside|both"
  "refcount_table_unaligned|v3|refcount;align|both"
  "refcount_table_past_eof|v3|refcount|both"
  "refcount_table_overlaps_l1|v3|overlap|both"
  "refcount_block_past_eof|v3|refcount|rw"
  "refcount_order_7|v3|refcount|both"
  "refcount_overflow|v3|overflow|refcount|snapshot"
  "cluster_bits_8|v3|cluster|both"
  "cluster_bits_22|v3|cluster|both"
  "cluster_bits_8|v2|cluster|both"
  "unknown_incompat|v3|20;incompatible|feature|unsupported|unknown|both"
  "unknown_incompat_named|v3|frobnicator|both"
  "corrupt_bit|v3|corrupt|rw"
  "encrypted|v3|encrypt|both"
  "encrypted|v2|encrypt|both"
  "external_data|v3|external|both"
  "backing_name_past_cluster|v3|backing|both"
  "backing_name_too_long|v3|backing|both"
  "snapshot_table_past_eof|v3|snapshot|both"
  "snapshot_table_unaligned|v3|snapshot|both"
  "too_many_snapshots|v3|snapshot|both"
  "bad_version|v3|version|both"
  "truncated|v3|header|short|trunc|small|eof|end|both"
  "as_is|extl2|extended|both"
)

# expect_error WHAT KEYWORDS DRIVER-ARGS...: the driver must exit 1 with every keyword group
# in its message.
expect_error() {
  local what=$1 keywords=$2 rc=0
  shift 2
  drv "$@" >/dev/null || rc=$?
  if [ "$rc" -ne 1 ]; then
    fail_later "$what: expected an error (exit 1), got exit $rc"
    return
  fi
  local msg group
  msg=$(cat "$WORK/drv.err")
  IFS=';' read -ra groups <<<"$keywords"
  for group in "${groups[@]}"; do
    if ! grep -qiE -- "$group" <<<"$msg"; then
      fail_later "$what: the error does not name the problem (no /$group/): $msg"
      return
    fi
  done
  ok "$what: $(head -c 300 <<<"$msg" | tr '\n' ' ')"
}

for spec in "${CASES[@]}"; do
  name=${spec%%|*}
  rest=${spec#*|}
  base=${rest%%|*}
  rest=${rest#*|}
  action=${rest##*|}
  keywords=${rest%|*}
  img="$WORK/${name}_$base.qcow2"
  cp "$WORK/$base.qcow2" "$img"
  touch_at=0
  if [ "$name" != as_is ]; then touch_at=$(python3 "$HERE/corrupt.py" "$name" "$img"); fi
  before=$(sha256sum <"$img")
  step "$name ($base): refused with a message matching '$keywords' ($action), file unchanged"
  case $action in
    both)
      expect_error "$name/$base read-only" "$keywords" touch "$img"
      expect_error "$name/$base read-write" "$keywords" touch "$img" --rw --write-at "$touch_at"
      ;;
    rw)
      rc=0
      drv touch "$img" >/dev/null || rc=$?
      [ "$rc" -le 1 ] || fail_later "$name/$base read-only: exit $rc"
      expect_error "$name/$base read-write" "$keywords" touch "$img" --rw --write-at "$touch_at"
      ;;
    snapshot)
      expect_error "$name/$base snapshot" "$keywords" snapshot "$img" create s1
      ;;
  esac
  after=$(sha256sum <"$img")
  if [ "$before" != "$after" ]; then
    fail_later "$name/$base: Vireo changed the damaged file (sha256 before $before, after $after)"
  else
    ok "$name/$base: file unchanged"
  fi
done
finish
