#!/bin/bash
# Checks the console log of one boot of the e2e Linux guest (see linux-guest.sh for the lines
# its /init prints). Shared by linux_boot_test.sh (Vireo) and qemu_smoke.sh (QEMU TCG), so the
# checks Vireo must pass are the ones the artifacts were proven against.
#
#   check_boot_log.sh NAME STATUS CONSOLE_LOG STDERR_LOG ARTIFACT_DIR CPUS ELAPSED_S
#
# Passes when the monitor exited 0 (guest power-off), /init ran on the expected kernel with CPUS
# online, loaded every module in ARTIFACT_DIR/modules.load and announced the power-off, and no
# kernel panic or guest reset was reported. On failure prints why and both logs' tails.
set -euo pipefail
name=$1 status=$2 console=$3 stderr_log=$4 artifacts=$5 cpus=$6 elapsed=$7

release=$(<"$artifacts/kernel-release")
modules=$(grep -c . "$artifacts/modules.load" || true)
# Serial consoles end lines with CR LF; match on the text only.
text=$(tr -d '\r' <"$console")

failures=()
case "$status" in
  0) ;;
  124|137) failures+=("timed out after ${elapsed}s (status $status)") ;;
  *) failures+=("exit status $status, wanted 0 (guest power-off)") ;;
esac
want_line() {
  grep -Fxq -- "$1" <<<"$text" || failures+=("console has no line: $1")
}
want_line "VIREO-E2E: init reached"
want_line "VIREO-E2E: uname -r: $release"
want_line "VIREO-E2E: nproc: $cpus"
want_line "VIREO-E2E: modules loaded: $modules/$modules"
want_line "VIREO-E2E: powering off"
if grep -q "Kernel panic" <<<"$text"; then
  failures+=("console reports a kernel panic: $(grep -m1 "Kernel panic" <<<"$text")")
fi
if [[ -s "$stderr_log" ]] && grep -q "guest reset" "$stderr_log"; then
  failures+=("the guest reset instead of powering off: $(grep -m1 "guest reset" "$stderr_log")")
fi

if [[ ${#failures[@]} -gt 0 ]]; then
  echo "FAILED: $name"
  printf '  %s\n' "${failures[@]}"
  echo "--- console (last 60 lines of $console):"
  tail -n 60 <<<"$text"
  if [[ -s "$stderr_log" ]]; then
    echo "--- stderr (last 30 lines of $stderr_log):"
    tail -n 30 "$stderr_log"
  fi
  exit 1
fi
grep -E '^VIREO-E2E: (init|uname|nproc|modules loaded|powering)' <<<"$text"
echo "ok: $name: kernel $release, $cpus CPUs, $modules modules, power-off in ${elapsed}s"
