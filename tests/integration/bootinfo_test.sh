#!/bin/bash
# Boots the bootinfo guest by one protocol with a generated initrd and command line, and checks
# that the guest saw exactly what the host passed: the command line, the e820 map Vireo
# documents for 256 MiB (src/arch/x86/layout.cc), and the initrd's size and POSIX cksum.
#
#   bootinfo_test.sh RUN_GUEST VIREO GUEST_ELF PROTOCOL WORKDIR [VIREO RUN ARGS...]
set -eu
run_guest=$1 vireo=$2 guest=$3 protocol=$4 workdir=$5
shift 5
mkdir -p "$workdir"
# Tests running in parallel with different arguments each get their own initrd.
initrd="$workdir/bootinfo-$protocol$(printf '%s' "$*" | tr -c 'a-z0-9' '-').initrd"
# Deterministic, odd-sized content so the length part of cksum matters.
seq 1 1357 | sed "s/^/$protocol line /" >"$initrd"
read -r cksum size _ < <(cksum "$initrd")
cmdline="vireo.test=bootinfo-$protocol answer=42 quoted=a,b"

extra=()
if [[ "$protocol" == multiboot ]]; then
  # 640 KiB minus the 1 KiB EBDA below 1 MiB; 255 MiB above it.
  extra+=(--stdout '^mem_lower=639 mem_upper=261120$')
fi
exec "$run_guest" --status 1 \
  --stdout "^protocol: $protocol\$" \
  --stdout "^cmdline: $cmdline\$" \
  --stdout '^e820: addr=0x0 size=0x9fc00 type=1$' \
  --stdout '^e820: addr=0x9fc00 size=0x60400 type=2$' \
  --stdout '^e820: addr=0x100000 size=0xff00000 type=1$' \
  --stdout "^initrd: addr=0x[0-9a-f]+ size=$size cksum=$cksum\$" \
  --stdout '^PASS bootinfo$' \
  "${extra[@]}" \
  -- "$vireo" run --kernel "$guest" --boot "$protocol" --memory 256M --initrd "$initrd" \
  --cmdline "$cmdline" "$@"
