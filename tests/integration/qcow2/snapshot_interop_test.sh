#!/usr/bin/env bash
# Snapshots interop, both directions; `qemu-img check` must be clean after every step.
#   ours -> qemu: snapshots Vireo creates are listed by `qemu-img snapshot -l`, applied by
#                 `qemu-img snapshot -a` (contents then equal a raw copy taken at snapshot time)
#                 and deleted by `qemu-img snapshot -d`.
#   qemu -> ours: snapshots qemu-img creates are listed, applied and deleted by Vireo, with the
#                 same content checks, and Vireo writes correctly over clusters shared with a
#                 snapshot (copy-on-write when the refcount is above 1).
# Usage: snapshot_interop_test.sh QCOW2_DRIVER
source "$(dirname "$0")/lib.sh"
SIZE=$((16 << 20))

must_check() {  # must_check WHAT IMG
  if qcheck "$2"; then ok "qemu-img check clean $1"; else fail_later "qemu-img check not clean $1 (exit $?)"; fi
}
must_equal() {  # must_equal WHAT IMG RAW
  if qcompare "$2" "$3"; then ok "contents equal $1"; else fail_later "contents differ $1"; fi
}
ops() {  # ops N CLUSTER > script: a different mix of writes, zero writes and discards per N
  local n=$1 c=$2
  cat <<S
write $((n * 1000)) $((3 * c)) $((n * 10 + 1))
write $((2 << 20)) $((n * c + 512)) $((n * 10 + 2))
zero $(((n + 1) * c)) $c
discard $((5 * c)) $((2 * c))
write $((5 * c + 700)) 100 $((n * 10 + 3))
write $((SIZE - 3 * c)) $((2 * c)) $((n * 10 + 4))
S
}

for spec in "3 65536" "2 4096"; do
  set -- $spec
  v=$1 c=$2
  tag="v${v}_c$c"
  img="$WORK/ours_$tag.qcow2" ref="$WORK/ours_$tag.raw"
  step "$tag: Vireo writes, takes snapshots s1 and s2 between writes"
  drv create "$img" "$SIZE" --version "$v" --cluster-size "$c" || fail "create"
  raw_zero "$ref" "$SIZE"
  for n in 1 2 3; do
    ops "$n" "$c" >"$WORK/ops$n"
    drv script "$img" "$ref" "$WORK/ops$n" || fail "$tag: Vireo's writes (round $n)"
    if [ "$n" -lt 3 ]; then
      cp "$ref" "$WORK/ours_$tag.s$n.raw"
      drv snapshot "$img" create "s$n" || fail_later "$tag: Vireo cannot create snapshot s$n"
      must_check "after Vireo created s$n" "$img"
    fi
  done
  must_equal "of the current state" "$img" "$ref"
  step "$tag: qemu-img snapshot -l lists Vireo's snapshots"
  qemu-img snapshot -l "$img" >"$WORK/list.out" || fail_later "$tag: qemu-img snapshot -l failed"
  cat "$WORK/list.out"
  for s in s1 s2; do
    grep -qE "^[0-9]+ +$s " "$WORK/list.out" || fail_later "$tag: qemu-img does not list $s"
  done
  for s in s1 s2; do
    step "$tag: qemu-img snapshot -a $s restores the contents at $s"
    cp "$img" "$WORK/applied.qcow2"
    if qemu-img snapshot -a "$s" "$WORK/applied.qcow2"; then
      must_equal "after qemu-img applied Vireo's $s" "$WORK/applied.qcow2" "$WORK/ours_$tag.$s.raw"
      must_check "after qemu-img applied Vireo's $s" "$WORK/applied.qcow2"
    else
      fail_later "$tag: qemu-img snapshot -a $s failed on Vireo's snapshot"
    fi
  done
  step "$tag: qemu-img snapshot -d s1 on Vireo's image, then the rest still holds"
  cp "$img" "$WORK/deleted.qcow2"
  qemu-img snapshot -d s1 "$WORK/deleted.qcow2" || fail_later "$tag: qemu-img cannot delete Vireo's s1"
  must_check "after qemu-img deleted Vireo's s1" "$WORK/deleted.qcow2"
  must_equal "after qemu-img deleted s1" "$WORK/deleted.qcow2" "$ref"
  step "$tag: Vireo applies s1 and deletes s2 itself"
  drv snapshot "$img" apply s1 || fail_later "$tag: Vireo cannot apply s1"
  must_equal "after Vireo applied s1" "$img" "$WORK/ours_$tag.s1.raw"
  must_check "after Vireo applied s1" "$img"
  drv snapshot "$img" delete s2 || fail_later "$tag: Vireo cannot delete s2"
  must_check "after Vireo deleted s2" "$img"
  if qemu-img snapshot -l "$img" | grep -qE "^[0-9]+ +s2 "; then fail_later "$tag: s2 still listed after Vireo deleted it"; fi
  step "$tag: Vireo writes over clusters still shared with s1"
  cp "$WORK/ours_$tag.s1.raw" "$ref"
  drv script "$img" "$ref" "$WORK/ops3" || fail_later "$tag: Vireo's writes after apply"
  must_equal "after writes over shared clusters" "$img" "$ref"
  must_check "after writes over shared clusters" "$img"
  cp "$img" "$WORK/applied.qcow2"
  qemu-img snapshot -a s1 "$WORK/applied.qcow2" && must_equal "s1 untouched by later writes" "$WORK/applied.qcow2" "$WORK/ours_$tag.s1.raw"
done

for compat in 1.1 0.10; do
  tag="qemu_$compat"
  img="$WORK/$tag.qcow2"
  step "$tag: qemu-io writes, qemu-img snapshot -c q1 and q2 between writes"
  qemu-img create -q -f qcow2 -o "compat=$compat,cluster_size=4k" "$img" "$SIZE"
  qemu-io -f qcow2 -c "write -P 0x21 0 1M" -c "write -P 0x22 3M 64k" "$img" >/dev/null
  raw_copy_of "$img" "$WORK/$tag.q1.raw"
  qemu-img snapshot -c q1 "$img"
  qemu-io -f qcow2 -c "write -P 0x31 512k 1M" -c "write -z 3M 4k" -c "discard 0 64k" "$img" >/dev/null
  raw_copy_of "$img" "$WORK/$tag.q2.raw"
  qemu-img snapshot -c q2 "$img"
  qemu-io -f qcow2 -c "write -P 0x41 100k 10k" -c "write -P 0x42 15M 1M" "$img" >/dev/null
  raw_copy_of "$img" "$WORK/$tag.now.raw"
  step "$tag: Vireo lists q1 and q2"
  if drv snapshot "$img" list >"$WORK/vlist.out"; then
    cat "$WORK/vlist.out"
    for s in q1 q2; do
      grep -qP "^\S+\t$s\t" "$WORK/vlist.out" || fail_later "$tag: Vireo does not list $s"
    done
  else
    fail_later "$tag: Vireo cannot list qemu's snapshots"
  fi
  for s in q1 q2; do
    step "$tag: Vireo applies $s; contents equal the copy taken at $s"
    cp "$img" "$WORK/applied.qcow2"
    if drv snapshot "$WORK/applied.qcow2" apply "$s"; then
      must_equal "after Vireo applied qemu's $s" "$WORK/applied.qcow2" "$WORK/$tag.$s.raw"
      must_check "after Vireo applied qemu's $s" "$WORK/applied.qcow2"
      drv compare "$WORK/applied.qcow2" "$WORK/$tag.$s.raw" >/dev/null || fail_later "$tag: Vireo reads differently after applying $s"
    else
      fail_later "$tag: Vireo cannot apply qemu's $s"
    fi
  done
  step "$tag: Vireo deletes q1; qemu-img no longer lists it, q2 still applies"
  cp "$img" "$WORK/deleted.qcow2"
  if drv snapshot "$WORK/deleted.qcow2" delete q1; then
    must_check "after Vireo deleted qemu's q1" "$WORK/deleted.qcow2"
    if qemu-img snapshot -l "$WORK/deleted.qcow2" | grep -qE "^[0-9]+ +q1 "; then fail_later "$tag: q1 still listed"; fi
    must_equal "of the current state after deleting q1" "$WORK/deleted.qcow2" "$WORK/$tag.now.raw"
    qemu-img snapshot -a q2 "$WORK/deleted.qcow2" || fail_later "$tag: qemu-img cannot apply q2 after Vireo deleted q1"
    must_equal "q2 after Vireo deleted q1" "$WORK/deleted.qcow2" "$WORK/$tag.q2.raw"
    must_check "after qemu-img applied q2" "$WORK/deleted.qcow2"
  else
    fail_later "$tag: Vireo cannot delete qemu's q1"
  fi
  step "$tag: Vireo writes over clusters shared with q1 and q2 (copy-on-write)"
  cp "$WORK/$tag.now.raw" "$WORK/ref.raw"
  ops 4 4096 >"$WORK/ops4"
  if drv script "$img" "$WORK/ref.raw" "$WORK/ops4"; then
    must_equal "after Vireo wrote over shared clusters" "$img" "$WORK/ref.raw"
    must_check "after Vireo wrote over shared clusters" "$img"
    qemu-img snapshot -a q1 "$img" && must_equal "q1 untouched by Vireo's writes" "$img" "$WORK/$tag.q1.raw"
  else
    fail_later "$tag: Vireo's writes over shared clusters failed"
  fi
done
finish
