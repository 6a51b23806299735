#!/usr/bin/env bash
# Crash test: a child process runs the random workload on a Vireo qcow2 without ever flushing
# at the end and is killed with SIGKILL at a random moment (after it reports it is running,
# plus a random delay). Some rounds use an allocation-heavy workload (sequential writes to
# fresh clusters with small clusters, so L2 tables and refcount blocks keep being allocated,
# and big discards that free them). After every kill:
#   - `qemu-img check` finds no corruption: exit 0, or 3 (leaked clusters only);
#   - Vireo's Check() also reports no corruption;
#   - Vireo can still read the whole disk.
# The image carries over from round to round, so damage left by one kill is not papered over.
# QCOW2_TEST_SEED=N changes the seeds and delays; QCOW2_CRASH_ROUNDS=N the number of kills.
# Usage: crash_test.sh QCOW2_DRIVER
source "$(dirname "$0")/lib.sh"
SIZE=$((64 << 20))
ROUNDS=${QCOW2_CRASH_ROUNDS:-20}
base_seed=$(seed_for 777)
RANDOM=$base_seed
echo "crash test: $ROUNDS kills, base seed $base_seed"

declare -A IMAGES=([small]="--cluster-size 512 --version 3" [v2]="--cluster-size 4096 --version 2"
                   [big]="--cluster-size 65536 --version 3")
for name in "${!IMAGES[@]}"; do
  # shellcheck disable=SC2086
  drv create "$WORK/$name.qcow2" "$SIZE" ${IMAGES[$name]} || fail "create $name"
done

for round in $(seq 1 "$ROUNDS"); do
  case $((round % 3)) in
    0) name=small ;;
    1) name=v2 ;;
    2) name=big ;;
  esac
  img="$WORK/$name.qcow2"
  seed=$((base_seed * 100 + round))
  heavy=""
  if [ $((round % 2)) -eq 0 ]; then heavy=--alloc-heavy; fi
  delay_ms=$((RANDOM % 400 + 1))
  step "round $round: image $name, seed $seed ${heavy:-mixed}, SIGKILL ${delay_ms} ms into the workload"
  rm -f "$WORK/child.out"
  "$DRIVER" workload "$img" --forever --no-final-flush --seed "$seed" $heavy \
    >"$WORK/child.out" 2>"$WORK/child.err" &
  child=$!
  # Wait (up to 20 s) until the child says it is running, so the kill lands mid-workload.
  for _ in $(seq 1 2000); do
    grep -q "workload running" "$WORK/child.out" 2>/dev/null && break
    kill -0 "$child" 2>/dev/null || break
    sleep 0.01
  done
  if ! grep -q "workload running" "$WORK/child.out"; then
    cat "$WORK/child.out" "$WORK/child.err" >&2
    wait "$child" || true
    fail "round $round: the workload ended before it got going"
  fi
  sleep "$(printf '0.%03d' "$delay_ms")"
  if ! kill -0 "$child" 2>/dev/null; then
    wait "$child" || true
    cat "$WORK/child.err" >&2
    fail "round $round: the workload died by itself before the kill"
  fi
  kill -KILL "$child"
  wait "$child" 2>/dev/null || true
  if grep -qE "AddressSanitizer|runtime error:|qcow2_driver:" "$WORK/child.err"; then
    cat "$WORK/child.err" >&2
    fail "round $round: the workload reported an error before the kill"
  fi
  qrc=0
  qemu-img check -f qcow2 "$img" >"$WORK/check.out" 2>&1 || qrc=$?
  case $qrc in
    0) ok "qemu-img check: clean" ;;
    3) ok "qemu-img check: leaked clusters only ($(grep -c 'Leaked cluster' "$WORK/check.out" || true))" ;;
    *) cat "$WORK/check.out" >&2; fail "round $round: qemu-img check exit $qrc: the crash left a corrupt image" ;;
  esac
  rc=0
  drv check "$img" >"$WORK/vcheck.out" || rc=$?
  case $rc in
    0 | 3) ok "Vireo check: no corruption (exit $rc)" ;;
    *) cat "$WORK/vcheck.out" >&2; fail "round $round: Vireo's Check() exit $rc after the crash" ;;
  esac
  drv read "$img" "$WORK/read.raw" || fail "round $round: Vireo cannot read the image after the crash"
  rm -f "$WORK/read.raw"
  # Leaks are allowed after a crash; repair them so the next round starts from a clean image
  # and any new leak or corruption is this round's.
  if [ $qrc -eq 3 ] || [ $rc -eq 3 ]; then qemu-img check -q -r leaks -f qcow2 "$img" >/dev/null 2>&1 || true; fi
done
finish
