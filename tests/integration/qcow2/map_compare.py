#!/usr/bin/env python3
"""Compares `qemu-img map --output=json` (the reference) with `qcow2_driver map`.

Only what the top layer says is compared, since that is what both must agree on:
  - qemu data at depth 0 with an offset  -> Vireo data at the same host offset
    (or zero, where qemu also says zero: a preallocated cluster over a hole reads as zeros);
  - qemu data at depth 0 without offset  -> Vireo data, compressed;
  - qemu zero (not data) at depth 0, present -> Vireo zero;
  - qemu not present, or from a backing layer (depth > 0) -> Vireo not data/zero at depth 0.
Usage: map_compare.py QEMU_JSON VIREO_MAP; exit 1 listing the first disagreements.
"""
import json
import sys

qemu = json.load(open(sys.argv[1]))
vireo = []
for line in open(sys.argv[2]):
    start, length, kind, depth, host, compressed = line.split()
    vireo.append((int(start), int(length), kind, int(depth), int(host), compressed == "1"))

q_end = qemu[-1]["start"] + qemu[-1]["length"] if qemu else 0
v_end = vireo[-1][0] + vireo[-1][1] if vireo else 0
problems = []
if q_end != v_end:
    problems.append(f"maps cover different sizes: qemu {q_end}, vireo {v_end}")

qi = vi = 0
pos = 0
while qi < len(qemu) and vi < len(vireo) and len(problems) < 10:
    q = qemu[qi]
    v = vireo[vi]
    q_lo, q_hi = q["start"], q["start"] + q["length"]
    v_lo, v_hi = v[0], v[0] + v[1]
    hi = min(q_hi, v_hi)
    kind, depth, host, compressed = v[2], v[3], v[4], v[5]
    where = f"[{pos}, {hi}) qemu={json.dumps(q)} vireo=({kind} depth {depth} host {host} compressed {int(compressed)})"
    top_q = q["depth"] == 0 and q["present"]
    if top_q and q["data"] and "offset" in q:
        want = q["offset"] + (pos - q_lo)
        got = host + (pos - v_lo) if host >= 0 else -1
        if kind == "zero" and q["zero"]:
            pass
        elif kind != "data" or depth != 0 or got != want:
            problems.append(f"{where}: expected data at host offset {want}, got {kind} at {got}")
    elif top_q and q["data"]:
        if kind != "data" or depth != 0 or not compressed:
            problems.append(f"{where}: expected compressed data")
    elif top_q and q["zero"]:
        if kind != "zero" or depth != 0:
            problems.append(f"{where}: expected a zero extent in the top layer")
    else:
        if depth == 0 and kind in ("data", "zero"):
            problems.append(f"{where}: expected nothing allocated in the top layer")
    pos = hi
    if q_hi == hi:
        qi += 1
    if v_hi == hi:
        vi += 1

for p in problems:
    print("   map:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
