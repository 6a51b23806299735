#!/usr/bin/env bash
# `vireo img` against the reference, qemu-img: every subcommand end to end, each result judged
# by qemu-img (check, compare, info, map, snapshot -l) or by qemu-io reading the bytes back.
#
#   img_cli_test.sh VIREO WORKDIR
#
# Prints one line per check (ok/FAIL) and exits 1 if any failed, 77 (skip) without qemu-img,
# qemu-io or python3. The two tools never run on one image at the same time: Vireo's lock
# (even a shared, read-only one) makes qemu-img refuse the image, as it should.
set -uo pipefail

vireo=$(realpath "$1")
work=$2/img_cli
for tool in qemu-img qemu-io python3; do
  command -v $tool >/dev/null || { echo "SKIP: $tool not found (apt-get install qemu-utils python3)"; exit 77; }
done
rm -rf "$work"
mkdir -p "$work"
cd "$work" || exit 1

failures=0
ok() { echo "ok   $*"; }
fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}
# expect NAME STATUS CMD...: runs CMD, which must exit with STATUS; its output is in out/err.
expect() {
  local name=$1 want=$2
  shift 2
  "$@" >out 2>err
  local got=$?
  if [[ $got -eq $want ]]; then ok "$name"; else fail "$name: exit $got, expected $want: $(head -c 300 err)"; fi
}
# grep_out NAME PATTERN [FILE]: FILE (default out) has a line matching PATTERN.
grep_out() {
  if grep -qE -- "$2" "${3:-out}"; then ok "$1"; else fail "$1: no line matches '$2' in: $(head -c 400 "${3:-out}")"; fi
}
# one_line_error NAME PATTERN CMD...: exit 1 and exactly one line on stderr matching PATTERN.
one_line_error() {
  local name=$1 pattern=$2
  shift 2
  "$@" >out 2>err
  local got=$?
  if [[ $got -ne 1 ]]; then fail "$name: exit $got, expected 1"; return; fi
  if [[ $(wc -l <err) -ne 1 ]]; then fail "$name: $(wc -l <err) lines on stderr: $(cat err)"; return; fi
  grep_out "$name" "$pattern" err
}
same() {  # NAME A B: A and B hold the same bytes (guest-visible) per qemu-img compare
  if qemu-img compare "$2" "$3" >cmp.out 2>&1; then ok "$1"; else fail "$1: $(cat cmp.out)"; fi
}
clean() {  # NAME IMAGE: qemu-img check finds no errors and no leaks
  if qemu-img check "$2" >chk.out 2>&1 && grep -q "No errors were found" chk.out; then
    ok "$1"
  else
    fail "$1: $(cat chk.out)"
  fi
}
# info_equal NAME IMAGE [ARGS]: ours and qemu-img's info --output json agree on every key
# qemu-img prints (snapshots: every key but icount, which Vireo does not record).
info_equal() {
  local name=$1 image=$2
  shift 2
  "$vireo" img info --output json "$@" "$image" >v.json 2>v.err || { fail "$name: $(cat v.err)"; return; }
  qemu-img info --output json "$@" "$image" >q.json 2>/dev/null
  if python3 - v.json q.json <<'EOF'; then ok "$name"; else fail "$name"; fi
import json, sys
v, q = (json.load(open(f)) for f in sys.argv[1:3])
def norm(x):
    x = [x] if isinstance(x, dict) else x
    for info in x:
        for s in info.get("snapshots", []):
            s.pop("icount", None)
    return x
v, q = norm(v), norm(q)
if v != q:
    print("  vireo:", json.dumps(v, sort_keys=True))
    print("  qemu: ", json.dumps(q, sort_keys=True))
    sys.exit(1)
EOF
}
# map_equal NAME IMAGE: ours and qemu-img map --output json list the same stretches.
map_equal() {
  "$vireo" img map --output json "$2" >v.map 2>v.err || { fail "$1: $(cat v.err)"; return; }
  qemu-img map --output json "$2" >q.map
  if python3 - v.map q.map <<'EOF'; then ok "$1"; else fail "$1"; fi
import json, sys
def load(f):
    out = []
    for e in json.load(open(f)):  # Merge as qemu-img does, so chunking cannot matter.
        key = (e["depth"], e["present"], e["zero"], e["data"], "offset" in e)
        if out and out[-1][0] == key and out[-1][1] + out[-1][2] == e["start"] and \
           ("offset" not in e or out[-1][3] + out[-1][2] == e["offset"]):
            out[-1][2] += e["length"]
        else:
            out.append([key, e["start"], e["length"], e.get("offset")])
    return out
v, q = load(sys.argv[1]), load(sys.argv[2])
if v != q:
    print("  vireo:", v)
    print("  qemu: ", q)
    sys.exit(1)
EOF
}
io() { qemu-io "$@" >/dev/null 2>io.err || fail "qemu-io $*: $(cat io.err)"; }

# ---- create ---------------------------------------------------------------------------------
expect "create qcow2" 0 "$vireo" img create -f qcow2 plain.qcow2 64M
grep_out "create prints qemu-img's line" "^Formatting 'plain.qcow2', fmt=qcow2 cluster_size=65536 .*size=67108864"
clean "created qcow2 passes qemu-img check" plain.qcow2
expect "create qcow2 with -o" 0 "$vireo" img create -f qcow2 \
  -o cluster_size=4k,compression_type=zstd,lazy_refcounts=on opts.qcow2 100M
qemu-img info --output json opts.qcow2 >q.json
if python3 -c '
import json; j = json.load(open("q.json")); d = j["format-specific"]["data"]
assert j["cluster-size"] == 4096 and j["virtual-size"] == 100 << 20, j
assert d["compression-type"] == "zstd" and d["lazy-refcounts"] is True and d["compat"] == "1.1", d'; then
  ok "qemu-img info sees the -o settings"
else
  fail "qemu-img info sees the -o settings: $(cat q.json)"
fi
clean "-o image passes qemu-img check" opts.qcow2
expect "create compat=0.10" 0 "$vireo" img create -q -f qcow2 -o compat=0.10 v2.qcow2 10M
grep_out "qemu-img info: compat 0.10" "compat: 0.10" <(qemu-img info v2.qcow2)
expect "create raw" 0 "$vireo" img create raw.img 8M
grep_out "qemu-img info: raw, 8 MiB" "virtual size: 8 MiB \(8388608 bytes\)" <(qemu-img info -f raw raw.img)
expect "create overlay without size" 0 "$vireo" img create -q -f qcow2 -b plain.qcow2 -F qcow2 over.qcow2
grep_out "overlay takes the backing size" '"virtual-size": 67108864' <(qemu-img info --output json over.qcow2)
grep_out "overlay names its backing file and format" '"backing-filename-format": "qcow2"' \
  <(qemu-img info --output json over.qcow2)
clean "overlay passes qemu-img check" over.qcow2

# ---- content used below ----------------------------------------------------------------------
# data.raw: 32 MiB with patterns, a zero-filled but allocated stretch, and holes.
truncate -s 32M data.raw
io -f raw -c "write -P 0x11 0 1M" -c "write -P 0x22 3M 192k" -c "write -P 0 8M 1M" \
  -c "write -P 0x33 20M 4k" -c "write -P 0x44 32764k 4k" data.raw
qemu-img convert -f raw -O qcow2 data.raw data.qcow2
qemu-img snapshot -c qsnap data.qcow2

# ---- info ------------------------------------------------------------------------------------
info_equal "info json = qemu-img: fresh qcow2" plain.qcow2
info_equal "info json = qemu-img: -o qcow2" opts.qcow2
info_equal "info json = qemu-img: compat 0.10" v2.qcow2
info_equal "info json = qemu-img: raw" raw.img -f raw
info_equal "info json = qemu-img: data + snapshot" data.qcow2
info_equal "info json = qemu-img: overlay" over.qcow2
info_equal "info json = qemu-img: --backing-chain" over.qcow2 --backing-chain
for image in plain.qcow2 opts.qcow2 v2.qcow2 over.qcow2; do
  "$vireo" img info "$image" >v.txt 2>&1
  qemu-img info "$image" >q.txt 2>&1
  if diff v.txt q.txt >diff.out; then
    ok "info text = qemu-img: $image"
  else
    fail "info text = qemu-img: $image: $(cat diff.out)"
  fi
done

"$vireo" img create -q -f qcow2 gone.qcow2 1M
"$vireo" img create -q -f qcow2 -b gone.qcow2 -F qcow2 lost.qcow2
rm gone.qcow2
expect "info on an overlay whose backing file is gone" 0 "$vireo" img info lost.qcow2
grep_out "info names the missing backing file" "^backing file: gone.qcow2$"

# ---- convert ---------------------------------------------------------------------------------
expect "convert raw -> qcow2" 0 "$vireo" img convert -f raw -O qcow2 data.raw c.qcow2
same "raw -> qcow2 reads the same" data.raw c.qcow2
clean "converted qcow2 passes qemu-img check" c.qcow2
expect "convert qcow2 -> raw" 0 "$vireo" img convert -O raw c.qcow2 back.raw
same "raw -> qcow2 -> raw round trip" data.raw back.raw
# The zero-filled stretch of the source is stored there, but neither output stores it.
if python3 - <<'EOF'; then ok "convert skips all-zero buffers"; else fail "convert skips all-zero buffers"; fi
import json, subprocess
m = json.loads(subprocess.check_output(["qemu-img", "map", "--output", "json", "c.qcow2"]))
bad = [e for e in m if e["data"] and e["start"] < 9 << 20 and e["start"] + e["length"] > 8 << 20]
raise SystemExit(1 if bad else 0)
EOF
used=$(du -k back.raw | cut -f1)
if [[ $used -lt 4096 ]]; then ok "raw output is sparse (${used} KiB of 32 MiB)"; else fail "raw output takes ${used} KiB"; fi
expect "convert -c (zlib)" 0 "$vireo" img convert -c -O qcow2 data.raw comp.qcow2
same "compressed image reads the same" data.raw comp.qcow2
clean "compressed image passes qemu-img check" comp.qcow2
grep_out "qemu-img check counts compressed clusters" "[1-9][0-9.]*% compressed clusters" chk.out
expect "convert -c (zstd, 4k clusters, odd size)" 0 "$vireo" img convert -c -O qcow2 \
  -o compression_type=zstd,cluster_size=4k data.raw compz.qcow2
same "zstd compressed image reads the same" data.raw compz.qcow2
clean "zstd compressed image passes qemu-img check" compz.qcow2
truncate -s 5000k odd.raw
io -f raw -c "write -P 0x66 4992k 8k" odd.raw
expect "convert -c with a partial last cluster" 0 "$vireo" img convert -c -f raw -O qcow2 odd.raw odd.qcow2
same "partial last cluster reads the same" odd.raw odd.qcow2
clean "partial last cluster passes qemu-img check" odd.qcow2
io -c "write -P 0x77 4M 64k" over.qcow2
expect "convert an overlay chain" 0 "$vireo" img convert -O qcow2 over.qcow2 flat.qcow2
same "flattened chain reads as the overlay" over.qcow2 flat.qcow2
"$vireo" img convert -p -O raw data.qcow2 p.raw >out 2>err
grep_out "convert -p draws qemu-img's progress line" "\(100\.00/100%\)" err

# ---- map -------------------------------------------------------------------------------------
map_equal "map json = qemu-img: qcow2 with data" data.qcow2
map_equal "map json = qemu-img: overlay" over.qcow2
map_equal "map json = qemu-img: compressed" comp.qcow2
io -c "write -z 2M 128k" over.qcow2
map_equal "map json = qemu-img: overlay with zero clusters" over.qcow2
"$vireo" img map data.qcow2 >v.txt 2>&1
qemu-img map data.qcow2 >q.txt 2>&1
if diff v.txt q.txt >diff.out; then
  ok "map text = qemu-img"
else
  fail "map text = qemu-img: $(cat diff.out)"
fi

# ---- check -----------------------------------------------------------------------------------
expect "check a clean image: exit 0" 0 "$vireo" img check data.qcow2
grep_out "check says no errors" "^No errors were found on the image.$"
grep_out "check prints the image end offset" "^Image end offset: [0-9]+$"
cp data.qcow2 leak.qcow2
# A leak: one more cluster at the end of the file with refcount 1 and nothing pointing at it.
python3 - leak.qcow2 <<'EOF'
import os, struct, sys
f = open(sys.argv[1], "r+b")
h = f.read(104)
cluster_bits = struct.unpack(">I", h[20:24])[0]
rt_offset = struct.unpack(">Q", h[48:56])[0]
cs = 1 << cluster_bits
f.seek(rt_offset)
block = struct.unpack(">Q", f.read(8))[0]
index = (os.path.getsize(sys.argv[1]) + cs - 1) // cs
assert index < cs // 2, "needs a second refcount block"
f.seek(block + 2 * index)
f.write(struct.pack(">H", 1))
f.truncate((index + 1) * cs)
EOF
qemu-img check leak.qcow2 >/dev/null 2>&1
[[ $? -eq 3 ]] && ok "qemu-img sees the made leak (exit 3)" || fail "qemu-img does not see the made leak"
expect "check a leaky image: exit 3" 3 "$vireo" img check leak.qcow2
grep_out "check reports the leak" "^1 leaked clusters were found on the image.$"
expect "check --output json" 3 "$vireo" img check --output json leak.qcow2
grep_out "check json counts the leak" '"leaks": 1' out
expect "check -r leaks: exit 0" 0 "$vireo" img check -r leaks leak.qcow2
grep_out "check -r says what it repaired" "^    1 leaked clusters$"
clean "repaired image passes qemu-img check" leak.qcow2
same "repair kept the data" data.raw leak.qcow2
cp data.qcow2 corrupt.qcow2
python3 - corrupt.qcow2 <<'EOF'
import struct, sys
f = open(sys.argv[1], "r+b")
h = f.read(104)
l1_offset = struct.unpack(">Q", h[40:48])[0]
rt_offset = struct.unpack(">Q", h[48:56])[0]
cs = 1 << struct.unpack(">I", h[20:24])[0]
f.seek(rt_offset)
block = struct.unpack(">Q", f.read(8))[0]
f.seek(block + 2 * (l1_offset // cs))  # The L1 table's cluster now has refcount 0.
f.write(struct.pack(">H", 0))
EOF
qemu-img check corrupt.qcow2 >/dev/null 2>&1
qstatus=$?
"$vireo" img check corrupt.qcow2 >out 2>err
vstatus=$?
if [[ $qstatus -eq 2 && $vstatus -eq 2 ]]; then ok "check a corrupt image: exit 2, as qemu-img"; else fail "corrupt image: vireo $vstatus, qemu-img $qstatus: $(head -3 err)"; fi
expect "check -r all repairs a too-low refcount: exit 0" 0 "$vireo" img check -r all corrupt.qcow2
grep_out "check -r all says what it repaired" "^    1 corruptions$"
clean "the -r all repair passes qemu-img check" corrupt.qcow2
same "repair all kept the data" data.raw corrupt.qcow2
expect "check raw: exit 63" 63 "$vireo" img check -f raw raw.img
grep_out "check raw says why" "does not support checks" err

# ---- snapshot --------------------------------------------------------------------------------
cp data.qcow2 snap.qcow2
expect "snapshot -c" 0 "$vireo" img snapshot -c ours snap.qcow2
grep_out "qemu-img snapshot -l lists ours" "^2 +ours " <(qemu-img snapshot -l snap.qcow2)
qemu-img snapshot -c theirs snap.qcow2
# The ID and TAG columns of both listings are the same.
"$vireo" img snapshot -l snap.qcow2 | awk '{print $1, $2}' >v.txt
qemu-img snapshot -l snap.qcow2 | awk '{print $1, $2}' >q.txt
if [[ -s q.txt ]] && diff v.txt q.txt >diff.out; then
  ok "snapshot -l = qemu-img snapshot -l"
else
  fail "snapshot -l = qemu-img snapshot -l: $(cat diff.out)"
fi
io -c "write -P 0x99 0 2M" snap.qcow2
expect "snapshot -a (qemu-img's snapshot)" 0 "$vireo" img snapshot -a theirs snap.qcow2
same "applied snapshot reads as before" data.raw snap.qcow2
expect "snapshot -d" 0 "$vireo" img snapshot -d theirs snap.qcow2
if qemu-img snapshot -l snap.qcow2 | grep -q theirs; then fail "qemu-img still lists the deleted snapshot"; else ok "qemu-img no longer lists it"; fi
io -c "write -P 0x98 0 1M" snap.qcow2
qemu-img snapshot -a ours snap.qcow2
same "qemu-img applies our snapshot" data.raw snap.qcow2
clean "snapshots leave qemu-img check clean" snap.qcow2
one_line_error "snapshot -a of a missing name" "nosuch" "$vireo" img snapshot -a nosuch snap.qcow2
one_line_error "snapshot on raw" "raw" "$vireo" img snapshot -c s raw.img -f raw

# ---- resize ----------------------------------------------------------------------------------
cp data.qcow2 grow.qcow2
qemu-img snapshot -d qsnap grow.qcow2
expect "resize +32M" 0 "$vireo" img resize grow.qcow2 +32M
grep_out "qemu-img info shows the new size" '"virtual-size": 67108864' <(qemu-img info --output json grow.qcow2)
clean "grown image passes qemu-img check" grow.qcow2
one_line_error "shrink without --shrink" "--shrink" "$vireo" img resize grow.qcow2 -16M
expect "resize --shrink" 0 "$vireo" img resize --shrink grow.qcow2 -- -32M
grep_out "qemu-img info shows the shrunk size" '"virtual-size": 33554432' <(qemu-img info --output json grow.qcow2)
same "shrunk back, the data is intact" data.raw grow.qcow2
cp raw.img grow.raw
expect "resize raw" 0 "$vireo" img resize -f raw grow.raw 10M
[[ $(stat -c %s grow.raw) -eq 10485760 ]] && ok "raw file is 10 MiB" || fail "raw file is $(stat -c %s grow.raw) bytes"

# ---- commit ----------------------------------------------------------------------------------
cp data.qcow2 base.qcow2
qemu-img snapshot -d qsnap base.qcow2
"$vireo" img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
io -c "write -P 0xab 512k 1M" -c "write -z 3M 64k" -c "write -P 0xcd 30M 100k" top.qcow2
qemu-img convert -O raw top.qcow2 top.raw
expect "commit" 0 "$vireo" img commit top.qcow2
grep_out "commit says so" "^Image committed.$"
same "the base now reads as the top did" top.raw base.qcow2
same "the top still reads the same" top.raw top.qcow2
clean "committed base passes qemu-img check" base.qcow2
clean "emptied top passes qemu-img check" top.qcow2
if qemu-img map --output json top.qcow2 | grep -q '"depth": 0'; then fail "the top still stores clusters"; else ok "the top is empty again"; fi
cp base.qcow2 base2.qcow2
"$vireo" img create -q -f qcow2 -b base2.qcow2 -F qcow2 top2.qcow2
io -c "write -P 0xef 1M 64k" top2.qcow2
qemu-img convert -O raw top2.qcow2 top2.raw
expect "commit -d" 0 "$vireo" img commit -d top2.qcow2
same "commit -d: the base reads as the top" top2.raw base2.qcow2
if qemu-img map --output json top2.qcow2 | grep -q '"depth": 0'; then ok "commit -d keeps the top's clusters"; else fail "commit -d emptied the top"; fi
one_line_error "commit without a backing file" "backing" "$vireo" img commit data.qcow2

# ---- bench -----------------------------------------------------------------------------------
"$vireo" img create -q -f qcow2 bench.qcow2 16M
expect "bench -w" 0 "$vireo" img bench -w -c 256 -d 8 -s 64k --pattern 0x5a bench.qcow2
grep_out "bench prints qemu-img's lines" "^Sending 256 write requests, 65536 bytes each, 8 in parallel"
grep_out "bench prints the time" "^Run completed in [0-9]+\.[0-9]{3} seconds\.$"
truncate -s 16M pattern.raw
io -f raw -c "write -P 0x5a 0 16M" pattern.raw
same "bench wrote every request" pattern.raw bench.qcow2
clean "bench image passes qemu-img check" bench.qcow2
expect "bench read --random" 0 "$vireo" img bench --random -c 1000 -d 16 -s 4k bench.qcow2
expect "bench on raw" 0 "$vireo" img bench -f raw -c 100 -s 4k pattern.raw

# ---- errors ----------------------------------------------------------------------------------
one_line_error "info on a missing file" "no-such.qcow2.*does not exist" "$vireo" img info no-such.qcow2
one_line_error "check on a missing file" "no-such.qcow2" "$vireo" img check no-such.qcow2
one_line_error "convert from a missing file" "no-such.raw" "$vireo" img convert no-such.raw x.qcow2
one_line_error "-f qcow2 on a raw file" "raw.img" "$vireo" img info -f qcow2 raw.img
one_line_error "bad -o option" "-o foo" "$vireo" img create -f qcow2 -o foo=bar x.qcow2 1M
one_line_error "bad cluster size" "cluster_size=3k" "$vireo" img create -f qcow2 -o cluster_size=3k x.qcow2 1M
one_line_error "unknown -O format" "vmdk" "$vireo" img convert -O vmdk data.raw x.vmdk
one_line_error "create without size" "size" "$vireo" img create -f qcow2 x.qcow2

echo "$failures failure(s)"
[[ $failures -eq 0 ]]
