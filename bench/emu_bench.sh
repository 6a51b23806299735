#!/usr/bin/env bash
# The software CPU against native execution and QEMU TCG: the CPL3 compute suite in
# tests/guests/bench_emu.cc, one guest binary booted three ways in one run:
#   emu  `vireo run --accel emu` (Vireo's interpreter; its retired-instruction count gives
#        emulated instructions per second)
#   kvm  `vireo run` (the workload runs natively at CPL3 under this host's KVM)
#   tcg  `qemu-system-x86_64 -M pc -accel tcg` (QEMU's JIT, multiboot entry)
#
#   bench/emu_bench.sh [BUILD_DIR]     (default: build; bench/run.sh calls it)
#
# Environment: EMU_RUNS (runs per engine and workload, default 3; medians are reported).
# Each case prints the median wall time of each engine, the emulated instructions per second and
# the ratios emu/tcg and emu/kvm of wall time (below 1: the software CPU is faster). Every run's
# checksum must equal the KVM run's, or the case fails: the suite doubles as a correctness check.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$repo/$build"
runs=${EMU_RUNS:-3}
vireo="$build/vireo"
guest="$build/guests/bench_emu.elf"
qemu_bin=${QEMU:-qemu-system-x86_64}

die() {
  echo "emu bench: $*" >&2
  exit 1
}
[[ -x "$vireo" && -e "$guest" ]] || die "missing $vireo or $guest: build first"
command -v "$qemu_bin" >/dev/null || die "$qemu_bin not found (scripts/install-deps.sh --bench)"
scratch=$(mktemp -d /tmp/vireo-emu-bench.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

# workload and size: about 2-3 s of interpretation each on this 2-core host.
cases=("int 10000000" "sse 300" "branchy 8000000" "pagewalk 400")

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# run ENGINE WORK N: prints "seconds checksum [instructions]".
run() {
  local engine=$1 work=$2 n=$3 out="$scratch/out" err="$scratch/err" start end
  local cmdline="emu.work=$work emu.n=$n"
  start=$(date +%s%N)
  case $engine in
    emu) "$vireo" run -v --accel emu --kernel "$guest" --cmdline "$cmdline" >"$out" 2>"$err" || true ;;
    kvm) "$vireo" run --kernel "$guest" --cmdline "$cmdline" >"$out" 2>"$err" || true ;;
    tcg) "$qemu_bin" -M pc -accel tcg -m 256 -nodefaults -no-user-config -display none \
           -monitor none -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
           -kernel "$guest" -append "$cmdline" >"$out" 2>"$err" || true ;;
  esac
  end=$(date +%s%N)
  local sum insns
  sum=$(tr -d '\r' <"$out" | sed -n 's/^bench_emu: .*checksum=\(0x[0-9a-f]*\)$/\1/p')
  [[ -n "$sum" ]] || { cat "$out" "$err" >&2; die "$engine $work: no checksum"; }
  insns=$(sed -n 's/.*retired \([0-9]*\) instructions.*/\1/p' "$err")
  echo "$(awk -v ns=$((end - start)) 'BEGIN {printf "%.3f", ns / 1e9}') $sum ${insns:-0}"
}

printf '%-9s %9s %9s %9s %12s %9s %9s\n' workload emu_s tcg_s kvm_s emu_Minsn/s emu/tcg emu/kvm
for c in "${cases[@]}"; do
  read -r work n <<<"$c"
  declare -A times=()
  reference="" insns=0
  for engine in kvm emu tcg; do
    : >"$scratch/times"
    for ((i = 0; i < runs; i++)); do
      read -r secs sum count < <(run $engine "$work" "$n")
      [[ -z "$reference" ]] && reference=$sum
      [[ "$sum" == "$reference" ]] || die "$work: $engine checksum $sum, kvm says $reference"
      echo "$secs" >>"$scratch/times"
      [[ $engine == emu ]] && insns=$count
    done
    times[$engine]=$(median <"$scratch/times")
  done
  awk -v w="$work" -v e="${times[emu]}" -v t="${times[tcg]}" -v k="${times[kvm]}" -v i="$insns" \
    'BEGIN {printf "%-9s %9.3f %9.3f %9.3f %12.1f %8.2fx %8.2fx\n", w, e, t, k, i / e / 1e6, e / t, e / k}'
done
