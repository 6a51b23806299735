#!/bin/bash
# Whole-VM checks of `vireo run` options and host-side behaviour that run_guest.sh's
# one-shot model cannot express (signals, files, host state).
#
#   vm_options_test.sh CASE VIREO GUESTS_DIR
#
# Cases:
#   sigterm         SIGTERM stops a running VM cleanly: status 143, a one-line reason, no hang
#   sigint          the same for SIGINT (Ctrl-C): status 130
#   serial-file     --serial file:PATH sends the guest's output to PATH and nothing to stdout
#   serial-none     --serial none discards the guest's output
#   hugepages       --memory-backing hugepages: boots when 2 MiB pages are reserved, else a
#                   one-line error that says how to reserve them
#   affinity        --cpu-affinity pins each vCPU thread to the host CPU asked for
#   affinity-bad    --cpu-affinity naming a host CPU that does not exist is a usage error
#   mlock           --mlock boots (as root the limit allows it)
set -u
case_name=$1
vireo=$2
guests=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "FAILED ($case_name): $*"
  for f in "$tmp"/out "$tmp"/err "$tmp"/serial; do
    [[ -f "$f" ]] && { echo "--- $(basename "$f"):"; cat "$f"; }
  done
  exit 1
}

stop_by_signal() {
  local sig=$1 want=$2
  # serial_input hlt-waits up to 10 s for a line; stdin stays open (a FIFO nobody writes).
  mkfifo "$tmp/in"
  exec 3<>"$tmp/in"
  "$vireo" run --kernel "$guests/serial_input.elf" <&3 >"$tmp/out" 2>"$tmp/err" &
  local pid=$!
  # Wait for the guest to be running (it prints before waiting), then signal.
  for _ in $(seq 100); do
    grep -q . "$tmp/out" 2>/dev/null && break
    sleep 0.05
  done
  kill "-$sig" "$pid"
  local start=$SECONDS
  wait "$pid"
  local status=$?
  exec 3>&-
  [[ $status -eq $want ]] || fail "exit status $status, wanted $want"
  ((SECONDS - start <= 3)) || fail "took $((SECONDS - start)) s to stop"
  grep -q "stopped by signal" "$tmp/err" || fail "no 'stopped by signal' on stderr"
  grep -q "^got:" "$tmp/out" && fail "the guest finished instead of being stopped"
  return 0
}

case "$case_name" in
  sigterm) stop_by_signal TERM 143 ;;
  sigint) stop_by_signal INT 130 ;;
  serial-file)
    "$vireo" run --kernel "$guests/hello.elf" --serial "file:$tmp/serial" >"$tmp/out" 2>"$tmp/err"
    status=$?
    [[ $status -eq 85 ]] || fail "exit status $status, wanted 85"
    grep -q "hello from vireo guest" "$tmp/serial" || fail "serial file lacks the greeting"
    [[ ! -s "$tmp/out" ]] || fail "stdout is not empty"
    ;;
  serial-none)
    "$vireo" run --kernel "$guests/hello.elf" --serial none >"$tmp/out" 2>"$tmp/err"
    status=$?
    [[ $status -eq 85 ]] || fail "exit status $status, wanted 85"
    [[ ! -s "$tmp/out" ]] || fail "stdout is not empty"
    ;;
  hugepages)
    free_pages=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
    "$vireo" run --kernel "$guests/hello.elf" --memory 64M --memory-backing hugepages \
      >"$tmp/out" 2>"$tmp/err"
    status=$?
    if ((free_pages >= 32)); then
      [[ $status -eq 85 ]] || fail "exit status $status with $free_pages free hugepages, wanted 85"
    else
      echo "note: $free_pages free 2 MiB hugepages: checking the error path"
      [[ $status -eq 1 ]] || fail "exit status $status without hugepages, wanted 1"
      [[ $(wc -l <"$tmp/err") -eq 1 ]] || fail "error is not one line"
      grep -q "nr_hugepages" "$tmp/err" || fail "error does not say how to reserve hugepages"
    fi
    ;;
  affinity)
    last=$(($(nproc) - 1))
    mkfifo "$tmp/in"
    exec 3<>"$tmp/in"
    "$vireo" run --kernel "$guests/serial_input.elf" --cpus 2 --cpu-affinity "0=$last,1=0" \
      <&3 >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    for _ in $(seq 100); do
      grep -q . "$tmp/out" 2>/dev/null && break
      sleep 0.05
    done
    # While the VM runs, each vCPU thread must be allowed only on its host CPU.
    for want in "vcpu0=$last" "vcpu1=0"; do
      name=${want%%=*}
      cpu=${want#*=}
      found=""
      for task in /proc/"$pid"/task/*; do
        [[ "$(cat "$task/comm" 2>/dev/null)" == "$name" ]] || continue
        found=$(sed -nE 's/^Cpus_allowed_list:[[:space:]]*//p' "$task/status")
      done
      [[ "$found" == "$cpu" ]] || { kill "$pid"; fail "$name allowed on '$found', wanted '$cpu'"; }
    done
    printf 'ping vireo\n' >&3
    wait "$pid"
    status=$?
    exec 3>&-
    [[ $status -eq 231 ]] || fail "exit status $status, wanted 231"
    ;;
  affinity-bad)
    "$vireo" run --kernel "$guests/hello.elf" --cpu-affinity "0=4096" >"$tmp/out" 2>"$tmp/err"
    status=$?
    [[ $status -eq 2 ]] || fail "exit status $status, wanted 2"
    grep -q "host CPU 4096 does not exist" "$tmp/err" || fail "error does not name the CPU"
    ;;
  mlock)
    "$vireo" run --kernel "$guests/hello.elf" --memory 32M --mlock >"$tmp/out" 2>"$tmp/err"
    status=$?
    [[ $status -eq 85 ]] || fail "exit status $status, wanted 85"
    ;;
  *)
    echo "unknown case $case_name" >&2
    exit 2
    ;;
esac
echo "ok: $case_name"
