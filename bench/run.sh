#!/usr/bin/env bash
# Vireo's benchmarks against QEMU (microvm, KVM) and the raw-ioctl floor, in one run.
#
#   bench/run.sh [BUILD_DIR]      (default: build; `make bench` passes $(BUILD))
#
# Needs, in BUILD_DIR: vireo, bench/vmm_probe, bench/raw_exit_floor, guests/bench_exits.elf,
# guests/bench_first_byte.elf (all built by default), plus qemu-system-x86_64 and /dev/kvm.
# Environment: RUNS (runs per measurement, default 11, at least 10 for the report),
# N1/N2 (loop counts for the exit cases, default 1000/21000); for the virtio-blk cases
# (guests/bench_blk.elf): BLK_RUNS (default 5), BLK_OPS (4 KiB requests per random case, default
# 4000), BLK_SEQ_MIB (MiB per sequential case, default 64), BLK_DIRS (where the raw images go,
# default "/dev/shm /var/tmp"; empty: skip the virtio-blk cases); for the qcow2 cases
# (bench/qcow2_bench.sh): QCOW2_BENCH=0 skips them, QCOW2_RUNS (default 5), QCOW2_DIR; for the
# snapshot cases (bench/snapshot.sh): SNAPSHOT_BENCH=0 skips them, SNAP_RUNS (default 5); for
# live migration (bench/migration.sh): MIGRATION_BENCH=0 skips it, MIG_RUNS (default 3); for
# the software CPU (bench/emu_bench.sh): EMU_BENCH=0 skips it, EMU_RUNS (default 3); for Debian
# on the software CPU (bench/linux_emu.sh): LINUX_EMU_BENCH=0 skips it, LINUX_EMU_RUNS (default 1).
#
# Writes BUILD_DIR/bench/results-<UTC timestamp>.jsonl (one JSON object per measurement, the
# first being the host description) and .txt (the table printed below), and copies them to
# results-latest.*. How each number is measured: docs/performance.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$repo/$build"
runs=${RUNS:-11}
n1=${N1:-1000}
n2=${N2:-21000}

vireo="$build/vireo"
probe="$build/bench/vmm_probe"
floor="$build/bench/raw_exit_floor"
exits_elf="$build/guests/bench_exits.elf"
first_elf="$build/guests/bench_first_byte.elf"
blk_elf="$build/guests/bench_blk.elf"
blk_runs=${BLK_RUNS:-5}
blk_ops=${BLK_OPS:-4000}
blk_seq_mib=${BLK_SEQ_MIB:-64}
blk_dirs=${BLK_DIRS-/dev/shm /var/tmp}
qemu_bin=${QEMU:-qemu-system-x86_64}

die() {
  echo "bench: $*" >&2
  exit 1
}
for f in "$vireo" "$probe" "$floor" "$exits_elf" "$first_elf" "$blk_elf"; do
  [[ -e "$f" ]] || die "missing $f: build first (cmake --build $build)"
done
[[ -r /dev/kvm && -w /dev/kvm ]] || die "/dev/kvm is not usable by $(id -un)"
command -v "$qemu_bin" >/dev/null || die "$qemu_bin not found (scripts/install-deps.sh --bench)"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
outdir="$build/bench"
mkdir -p "$outdir"
jsonl="$outdir/results-$stamp.jsonl"
txt="$outdir/results-$stamp.txt"
scratch=$(mktemp -d /tmp/vireo-bench.XXXXXX)
blk_images=()
trap 'rm -rf "$scratch" "${blk_images[@]}"' EXIT

log() { echo "bench: $*" >&2; }

# Both VMMs get the same machine: 1 vCPU, 256 MiB, COM1 on stdout, debug-exit at 0xf4.
vireo_cmd=("$vireo" run --cpus 1 --memory 256M --serial stdio --boot pvh --kernel)
# shellcheck disable=SC2054  # the commas are QEMU's, inside one argument
qemu_common=(-enable-kvm -m 256M -smp 1 -nodefaults -no-user-config -display none
  -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4)
# microvm boots the PVH note through its qboot firmware. Without -cpu host: on kvm_pvm QEMU 7.2's
# "-cpu host" aborts setting MSR 0x10a (IA32_ARCH_CAPABILITIES); the default model only warns.
qemu_cmd=("$qemu_bin" -M microvm "${qemu_common[@]}" -kernel)
qemu_machine="microvm"

# Does QEMU run the first-byte guest at all (status 1 = debug-exit 0)? If microvm cannot, try
# -M pc (SeaBIOS, multiboot); if neither can, QEMU's columns are n/a and the reason is recorded.
qemu_try() {
  local status=0
  timeout 20 "$@" "$first_elf" </dev/null >/dev/null 2>"$scratch/qemu.err" || status=$?
  [[ $status -eq 1 ]] && return 0
  echo "status $status: $(head -c 300 "$scratch/qemu.err" | tr '\n' ' ')"
  return 1
}
qemu_note=""
if ! why=$(qemu_try "${qemu_cmd[@]}"); then
  qemu_note="-M microvm failed ($why)"
  log "QEMU $qemu_note; trying -M pc"
  qemu_cmd=("$qemu_bin" -M pc "${qemu_common[@]}" -kernel)
  qemu_machine="pc"
  if ! why=$(qemu_try "${qemu_cmd[@]}"); then
    qemu_note="$qemu_note; -M pc failed too ($why)"
    log "QEMU is unusable on this host; its columns will be n/a"
    qemu_cmd=()
    qemu_machine="none"
  fi
fi

# --- host description --------------------------------------------------------------------
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\n')"; }
cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
kvm_modules=$(cd /sys/module && echo kvm*)
qemu_version=$("$qemu_bin" --version | head -1)
vireo_rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  printf '{"bench": "host", "date_utc": %s, "cpu": %s, "cpus": %s, "kernel": %s, ' \
    "$(json_str "$stamp")" "$(json_str "$cpu_model")" "$(nproc)" "$(json_str "$(uname -r)")"
  printf '"kvm_modules": %s, "qemu": %s, "qemu_machine": %s, "qemu_note": %s, ' \
    "$(json_str "$kvm_modules")" "$(json_str "$qemu_version")" "$(json_str "$qemu_machine")" \
    "$(json_str "$qemu_note")"
  printf '"load_before": %s, "vireo_commit": %s, "runs": %s, "n1": %s, "n2": %s, "vireo_cmd": %s, "qemu_cmd": %s}\n' \
    "$(json_str "$load_before")" "$(json_str "$vireo_rev")" "$runs" "$n1" "$n2" "$(json_str "${vireo_cmd[*]}")" \
    "$(json_str "${qemu_cmd[*]:-n/a}")"
} >"$jsonl"

# Runs one vmm_probe measurement and appends its JSON lines.
probe() {
  "$probe" "$@" >>"$jsonl"
}
# targets GUEST: sets `labels` and `cmdline` to every VMM's command for GUEST, separated by ---,
# so vmm_probe interleaves their runs.
targets() {
  labels=vireo
  cmdline=("${vireo_cmd[@]}" "$1")
  if [[ ${#qemu_cmd[@]} -gt 0 ]]; then
    labels+=",qemu"
    cmdline+=(--- "${qemu_cmd[@]}" "$1")
  fi
}

# --- 1. start-up: process start -> first serial byte, -> process exit ---------------------
# Cheap, and the noisiest case on a shared host, so it gets more runs.
startup_runs=$((runs * 2 + 1))
log "start-up (bench_first_byte), $startup_runs runs each, interleaved"
targets "$first_elf"
probe startup --labels "$labels,floor,floor-irqchip" --runs "$startup_runs" --expect-status 1 \
  -- "${cmdline[@]}" --- "$floor" --boot-probe --- "$floor" --boot-probe --irqchip

# The same for a runtime guest (bench_exits, mode none): boot protocol, runtime init, ACPI
# parsing and two lines of polled serial output, then debug-exit.
"$probe" patch --elf "$exits_elf" --out "$scratch/none.elf" --mode none --count 0
targets "$scratch/none.elf"
probe startup --labels "${labels//,/-runtime,}-runtime" --runs "$startup_runs" \
  --expect-status 1 -- "${cmdline[@]}"

# Vireo's own view (--stats, on stderr): time to first guest entry, and its exit counts.
stats_first=()
for ((i = 0; i < runs; i++)); do
  "${vireo_cmd[@]}" "$first_elf" --stats </dev/null >/dev/null 2>"$scratch/stats.txt" || true
  v=$(sed -n 's/.*time to first guest instruction: \([0-9.]*\) ms.*/\1/p' "$scratch/stats.txt")
  [[ -n "$v" ]] && stats_first+=("$v")
done
if [[ ${#stats_first[@]} -gt 0 ]]; then
  median=$(printf '%s\n' "${stats_first[@]}" | sort -g |
    awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')
  printf '{"bench": "vireo_stats", "label": "vireo", "runs": %s, "first_entry_ms": %s}\n' \
    "${#stats_first[@]}" "$median" >>"$jsonl"
fi
"$probe" patch --elf "$exits_elf" --out "$scratch/pio.elf" --mode pio_cpl0 --count "$n1"
"${vireo_cmd[@]}" "$scratch/pio.elf" --stats </dev/null >/dev/null 2>"$outdir/vireo-stats-$stamp.txt" ||
  true

# --- 2. memory while the guest idles ---------------------------------------------------------
"$probe" patch --elf "$exits_elf" --out "$scratch/idle.elf" --mode idle --count 0
log "idle memory, $runs runs each"
targets "$scratch/idle.elf"
probe rss --labels "$labels" --runs "$runs" --ready idle -- "${cmdline[@]}"

# --- 3. exit round trips, and 4. the floor ---------------------------------------------------
targets @ELF@
for mode in pio_cpl0 pio_cpl3 mmio_cpl0 mmio_cpl3; do
  log "exits $mode (N=$n1 vs $n2), $runs runs each"
  probe exits --labels "$labels" --runs "$runs" --expect-status 1 --elf "$exits_elf" \
    --mode "$mode" --n1 "$n1" --n2 "$n2" -- "${cmdline[@]}"
done
log "raw-ioctl floor, $runs runs per case"
"$floor" --runs "$runs" --cpl0-n "$n1" "$n2" --cpl3-n "$n1" "$n2" |
  sed 's/^{"case"/{"bench": "floor", "case"/' >>"$jsonl"

# --- 5. virtio-blk ---------------------------------------------------------------------------
# The bench_blk guest (tests/guests/bench_blk.cc) runs every case in one boot, its loops at CPL3
# polling the used ring, and prints guest TSC ticks per case; vmm_probe blk converts them. The
# image is a raw file of 128 MiB written with zeros first (so tmpfs has its pages and the disk
# file its blocks). Vireo: its default virtio-pci transport. QEMU: virtio-blk-pci, modern only,
# on q35 (SeaBIOS) and on microvm with PCIe, both cache=writeback (host page cache, as Vireo's
# cache=writeback), aio=io_uring if this QEMU accepts it, else aio=threads.
blk_note=""
blk_aio=io_uring
blk_qemu_machines=()
if [[ -n "$blk_dirs" && ${#qemu_cmd[@]} -gt 0 ]]; then
  # Does QEMU accept the drive? Started paused (-S): an option error exits at once, while an
  # accepted configuration runs until the timeout (status 124).
  blk_probe_img="$scratch/probe.img"
  truncate -s 1M "$blk_probe_img"
  for aio in io_uring threads; do
    status=0
    timeout 3 "$qemu_bin" -M q35 -S -enable-kvm -m 64M -nodefaults -no-user-config -display none \
      -drive "if=none,id=d0,file=$blk_probe_img,format=raw,cache=writeback,aio=$aio" \
      -device virtio-blk-pci,drive=d0,disable-legacy=on >/dev/null 2>"$scratch/qemu-blk.err" ||
      status=$?
    if [[ $status -eq 124 ]]; then
      blk_aio=$aio
      break
    fi
    blk_note+="aio=$aio refused: $(head -c 200 "$scratch/qemu-blk.err" | tr '\n' ' '); "
    blk_aio=""
  done
  [[ -n "$blk_aio" ]] && blk_qemu_machines=(q35 microvm,pcie=on)
fi
for dir in $blk_dirs; do
  case "$dir" in
    /dev/shm*) where=tmpfs ;;
    *) where=disk ;;
  esac
  img="$dir/vireo-bench-blk-$stamp.img"
  blk_images+=("$img")
  if ! dd if=/dev/zero of="$img" bs=1M count=128 conv=fsync status=none 2>"$scratch/dd.err"; then
    blk_note+="$dir: cannot write an image ($(tr '\n' ' ' <"$scratch/dd.err")); "
    continue
  fi
  labels="vireo-$where"
  cmdline=("$vireo" run --cpus 1 --memory 256M --serial stdio --boot pvh --kernel "$blk_elf"
    --cmdline "blk.ops=$blk_ops blk.seq_mib=$blk_seq_mib" --disk "path=$img,cache=writeback")
  for m in "${blk_qemu_machines[@]}"; do
    labels+=",qemu-${m%%,*}-$where"
    cmdline+=(--- "$qemu_bin" -M "$m" "${qemu_common[@]}" -kernel "$blk_elf"
      -append "blk.ops=$blk_ops blk.seq_mib=$blk_seq_mib"
      -drive "if=none,id=d0,file=$img,format=raw,cache=writeback,aio=$blk_aio"
      -device virtio-blk-pci,drive=d0,disable-legacy=on)
  done
  log "virtio-blk on $where ($img), $blk_runs runs each after a warm-up, interleaved"
  probe blk --labels "$labels" --runs "$blk_runs" --expect-status 1 --timeout-s 120 \
    -- "${cmdline[@]}"
  rm -f "$img"
done
printf '{"bench": "blk_setup", "qemu_aio": %s, "qemu_machines": %s, "note": %s, "ops": %s, "seq_mib": %s}\n' \
  "$(json_str "${blk_aio:-none}")" "$(json_str "${blk_qemu_machines[*]:-none}")" \
  "$(json_str "$blk_note")" "$blk_ops" "$blk_seq_mib" >>"$jsonl"

# --- the table -------------------------------------------------------------------------------
# get BENCH LABEL-OR-CASE KEY [MODE]: one number from the JSON lines ("n/a" if absent).
get() {
  local line
  if [[ "$1" == floor ]]; then
    line=$(grep "\"bench\": \"floor\", \"case\": \"$2\"" "$jsonl" || true)
  elif [[ -n "${4:-}" ]]; then
    line=$(grep "\"bench\": \"$1\", \"label\": \"$2\",.*\"mode\": \"$4\"" "$jsonl" || true)
  else
    line=$(grep "\"bench\": \"$1\", \"label\": \"$2\"," "$jsonl" || true)
  fi
  local v
  v=$(printf '%s' "$line" | sed -n "s/.*\"$3\": \([-0-9.]*\).*/\1/p")
  echo "${v:-n/a}"
}
# get_blk LABEL CASE KEY: one number of the virtio-blk results ("n/a" if absent).
get_blk() {
  local v
  v=$(grep "\"bench\": \"blk\", \"label\": \"$1\",.*\"case\": \"$2\"" "$jsonl" |
    sed -n "s/.*\"$3\": \([-0-9.]*\).*/\1/p" || true)
  echo "${v:-n/a}"
}
ratio() {
  if [[ "$1" == n/a || "$2" == n/a ]]; then echo n/a; else awk "BEGIN {printf \"%.2f\", $1 / $2}"; fi
}
row() {  # name unit vireo qemu floor
  printf '%-44s %-6s %10s %10s %8s %10s\n' "$1" "$2" "$3" "$4" "$(ratio "$3" "$4")" "$5"
}
{
  echo "Vireo benchmarks, $stamp (UTC), commit $vireo_rev"
  echo "host: $cpu_model, $(nproc) CPUs, Linux $(uname -r), modules: $kvm_modules"
  echo "qemu: $qemu_version, -M $qemu_machine${qemu_note:+ ($qemu_note)}"
  echo "medians of $startup_runs (start-up) or $runs runs; exit costs by the difference method," \
    "N=$n1 vs N=$n2"
  echo "load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  printf '%-44s %-6s %10s %10s %8s %10s\n' case unit vireo qemu v/q floor
  row "start -> first serial byte (bare guest)" ms "$(get startup vireo first_byte_ms)" \
    "$(get startup qemu first_byte_ms)" "$(get startup floor first_byte_ms)"
  row "  the same, fastest run" ms "$(get startup vireo first_byte_min_ms)" \
    "$(get startup qemu first_byte_min_ms)" "$(get startup floor first_byte_min_ms)"
  row "start -> process exit (bare guest)" ms "$(get startup vireo exit_ms)" \
    "$(get startup qemu exit_ms)" "$(get startup floor exit_ms)"
  row "  the same, fastest run" ms "$(get startup vireo exit_min_ms)" \
    "$(get startup qemu exit_min_ms)" "$(get startup floor exit_min_ms)"
  row "start -> first serial byte (runtime guest)" ms "$(get startup vireo-runtime first_byte_ms)" \
    "$(get startup qemu-runtime first_byte_ms)" -
  row "start -> process exit (runtime guest)" ms "$(get startup vireo-runtime exit_ms)" \
    "$(get startup qemu-runtime exit_ms)" -
  row "idle VmRSS" KiB "$(get rss vireo rss_kb)" "$(get rss qemu rss_kb)" -
  row "idle PSS" KiB "$(get rss vireo pss_kb)" "$(get rss qemu pss_kb)" -
  for mode in pio_cpl0 pio_cpl3 mmio_cpl0 mmio_cpl3; do
    row "exit round trip $mode (wall difference)" ns "$(get exits vireo ns_per_exit "$mode")" \
      "$(get exits qemu ns_per_exit "$mode")" "$(get floor "$mode" ns_per_exit)"
  done
  for mode in pio_cpl0 pio_cpl3 mmio_cpl0 mmio_cpl3; do
    row "exit round trip $mode (guest rdtsc)" ns \
      "$(get exits vireo guest_tsc_ns_per_exit "$mode")" \
      "$(get exits qemu guest_tsc_ns_per_exit "$mode")" "$(get floor "$mode" steady_ns_per_exit)"
  done
  echo
  echo "vireo --stats, time to first guest entry (its own clock): $(get vireo_stats vireo first_entry_ms) ms"
  echo "start-up floor with the in-kernel irqchip and PIT (raw_exit_floor --boot-probe" \
    "--irqchip): first byte $(get startup floor-irqchip first_byte_ms) ms" \
    "(fastest $(get startup floor-irqchip first_byte_min_ms)), exit" \
    "$(get startup floor-irqchip exit_ms) ms (fastest $(get startup floor-irqchip exit_min_ms))"
  echo "floor column: raw_exit_floor (start-up: --boot-probe; guest rdtsc rows: its in-loop time)"
  if [[ -n "$blk_dirs" ]]; then
    echo
    echo "virtio-blk (guest bench_blk, CPL3 polling; medians of $blk_runs runs; QEMU aio=${blk_aio:-n/a})"
    printf '%-30s %-5s %10s %10s %10s %8s %8s\n' case unit vireo qemu-q35 q-microvm v/q35 v/mvm
    for where in tmpfs disk; do
      for c in randread_qd1 randread_qd32 randwrite_qd1 randwrite_qd32 seqread seqwrite; do
        key=iops unit=IOPS
        [[ $c == seq* ]] && key=mb_s unit=MB/s
        v=$(get_blk "vireo-$where" "$c" $key)
        q=$(get_blk "qemu-q35-$where" "$c" $key)
        m=$(get_blk "qemu-microvm-$where" "$c" $key)
        printf '%-30s %-5s %10s %10s %10s %8s %8s\n' "$c ($where)" "$unit" "$v" "$q" "$m" \
          "$(ratio "$v" "$q")" "$(ratio "$v" "$m")"
      done
    done
    note=$(sed -n 's/.*"bench": "blk_setup".*"note": "\([^"]*\)".*/\1/p' "$jsonl")
    if [[ -n "$note" ]]; then echo "virtio-blk notes: $note"; fi
  fi
} | tee "$txt"

# --- 6. qcow2: vireo img bench/convert against qemu-img (bench/qcow2_bench.sh; QCOW2_BENCH=0
# skips it). A failure there is reported, and the rest of the results are kept.
if [[ ${QCOW2_BENCH:-1} != 0 ]]; then
  log "qcow2: vireo img vs qemu-img (bench/qcow2_bench.sh)"
  if ! "$repo/bench/qcow2_bench.sh" "$build" | tee -a "$txt"; then
    log "qcow2 benchmark failed; its rows are missing from $txt"
  fi
fi

# --- 7. vhost-user-blk: vireo vhost-user blk vs qemu-storage-daemon inside a TCG Linux guest
# (bench/vhost_user_blk.sh; VHOST_USER_BENCH=0 skips it). A failure there keeps the rest.
if [[ ${VHOST_USER_BENCH:-1} != 0 ]]; then
  log "vhost-user-blk: vireo vs qemu-storage-daemon (bench/vhost_user_blk.sh)"
  if ! "$repo/bench/vhost_user_blk.sh" "$build" | tee -a "$txt"; then
    log "vhost-user-blk benchmark failed; its rows are missing from $txt"
  fi
fi

# --- 7b. The software CPU: the CPL3 compute suite on --accel emu, natively under KVM and on
# QEMU TCG (bench/emu_bench.sh; EMU_BENCH=0 skips it). A failure there keeps the rest.
if [[ ${EMU_BENCH:-1} != 0 ]]; then
  log "software CPU: --accel emu vs KVM vs QEMU TCG (bench/emu_bench.sh)"
  if ! "$repo/bench/emu_bench.sh" "$build" | tee -a "$txt"; then
    log "software CPU benchmark failed; its rows are missing from $txt"
  fi
fi

# --- 7c. Debian Linux on the software CPU against QEMU TCG: boot to init, virtio-blk dd and
# md5sum inside the guest, 1 and 2 vCPUs (bench/linux_emu.sh; LINUX_EMU_BENCH=0 skips it).
if [[ ${LINUX_EMU_BENCH:-1} != 0 ]]; then
  log "Debian on the software CPU: --accel emu vs QEMU TCG (bench/linux_emu.sh)"
  if ! "$repo/bench/linux_emu.sh" "$build" | tee -a "$txt"; then
    log "Linux-on-emu benchmark failed; its rows are missing from $txt"
  fi
fi

# --- 8. Snapshot/restore: vireo --restore vs QEMU migrate to a file / -incoming
# (bench/snapshot.sh; SNAPSHOT_BENCH=0 skips it). A failure there keeps the rest.
if [[ ${SNAPSHOT_BENCH:-1} != 0 ]]; then
  log "snapshot: vireo vs QEMU migrate-to-file (bench/snapshot.sh)"
  if ! "$repo/bench/snapshot.sh" "$build" | tee -a "$txt"; then
    log "snapshot benchmark failed; its rows are missing from $txt"
  fi
fi

# --- 9. Live migration: vireo PUT /vm/migrate vs QEMU QMP `migrate`, both over localhost TCP
# (bench/migration.sh; MIGRATION_BENCH=0 skips it). A failure there keeps the rest.
if [[ ${MIGRATION_BENCH:-1} != 0 ]]; then
  log "live migration: vireo vs QEMU over TCP (bench/migration.sh)"
  if ! "$repo/bench/migration.sh" "$build" | tee -a "$txt"; then
    log "migration benchmark failed; its rows are missing from $txt"
  fi
fi

cp "$jsonl" "$outdir/results-latest.jsonl"
cp "$txt" "$outdir/results-latest.txt"
log "results: $jsonl and $txt"
