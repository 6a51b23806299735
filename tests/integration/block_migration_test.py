#!/usr/bin/env python3
"""Block migration end to end between `vireo run` processes on localhost, with the blk_migrate
guest (every ~10 ms it checks the 4 KiB block its previous round wrote and writes the next one
of its 16 MiB disk, printing "blk N ok block B").

    block_migration_test.py VIREO GUESTS_DIR [--accel emu | --irqchip split]

(With --accel emu or --irqchip split only the raw and qcow2 migrations run, in that mode: the
destination of a split VM takes the mode from the stream.)

It proves:
  - refusals leave the source running the guest, the destination exiting 1 and the reason in
    the source's GET /vm/migrate: a destination without --disk (block migration needs one per
    disk), a destination disk smaller than the source's, a destination given --disk when the
    source does not send block data; GET /vm/migrate reports the block fields;
  - a raw disk migrates with "block": true into an empty raw image, and a qcow2 disk into an
    empty qcow2 image, while the guest writes: the source exits 0 naming the disk bytes sent,
    the guest's lines continue with no gap or repeat and its first read-back on the
    destination sees the source's last write, and the destination's disk, once it is stopped,
    holds exactly the source's final disk plus the writes the guest made on the destination
    (data the source disk held before the VM started included).
"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_test import Failure, Vm, check, print_log_tails, serial_text, wait_for  # noqa: E402
from migration_test import Incoming, Proxy, migrate, wait_migration_end  # noqa: E402

DISK = 16 << 20
BLOCK = 4096


def pattern(n):
    """The bytes blk_migrate writes in round n (its Pattern())."""
    return bytes((n * 7 + i * 3 + (i >> 8) + 1) & 0xff for i in range(BLOCK))


def block_of(n):
    return n * 37 % (DISK // BLOCK)


def blk_lines(text):
    return [int(n) for n in re.findall(r"^blk (\d+) ok block \d+$", text, re.M)]


def incoming_with(vireo, work, name, extra):
    # Incoming builds its own command line; add the --disk options through a wrapper script.
    wrapper = os.path.join(work, f"{name}.sh")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec " + " ".join(f"'{a}'" for a in [vireo]) + ' "$@" ' +
                " ".join(f"'{a}'" for a in extra) + "\n")
    os.chmod(wrapper, 0o755)
    return Incoming(wrapper, work, name)


def img(vireo, *args):
    out = subprocess.run([vireo, "img", *args], capture_output=True, text=True)
    check(out.returncode == 0, f"vireo img {' '.join(args)}: {out.stderr}")


def to_raw(path, fmt, work, name):
    if fmt == "raw":
        with open(path, "rb") as f:
            return f.read()
    out = os.path.join(work, f"{name}.converted.raw")
    r = subprocess.run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", path, out],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"qemu-img convert {path}: {r.stderr}")
    with open(out, "rb") as f:
        return f.read()


def make_source_disk(vireo, work, fmt):
    """A 16 MiB disk holding seeded random data in its first 2 MiB and at 9 MiB (the rest
    zero), in the format asked for."""
    raw = os.path.join(work, f"src-{fmt}.raw")
    rng = random.Random(8)
    with open(raw, "wb") as f:
        f.truncate(DISK)
        f.write(rng.randbytes(2 << 20))
        f.seek(9 << 20)
        f.write(rng.randbytes(300 << 10))
    if fmt == "raw":
        return raw
    qcow = os.path.join(work, f"src-{fmt}.qcow2")
    img(vireo, "convert", "-f", "raw", "-O", "qcow2", raw, qcow)
    return qcow


def expect_refused(vireo, src, dst, phrase, what):
    ans = wait_migration_end(src)
    check(ans["state"] == "failed" and phrase in ans.get("error", ""),
          f"{what}: expected a failure naming {phrase!r}, got {ans}")
    rc = dst.wait_exit()
    check(rc == 1 and phrase in dst.stderr(), f"{what}: destination status {rc}: {dst.stderr()}")
    check(not blk_lines(serial_text(dst.serial)), f"{what}: the destination ran the guest")
    st, info = src.api("GET", "/vm")
    check(st == 200 and info["state"] == "running", f"{what}: source state {st} {info}")
    n = blk_lines(serial_text(src.serial))[-1]
    wait_for(lambda: blk_lines(serial_text(src.serial))[-1] >= n + 3, 10,
             f"{what}: the source to keep writing")
    return ans


# Options for the migrating VMs in a mode run: the source's, the destination's.
SRC_EXTRA = []
DST_EXTRA = []


def migrate_and_compare(vireo, work, fmt, procs, bandwidth_mbps):
    """Migrates a blk_migrate VM on a `fmt` disk with block=true into an empty `fmt` image
    (under a bandwidth cap, so the guest writes chunks already copied and they go again)."""
    kernel = os.path.join(sys.argv[2], "blk_migrate.elf")
    src_disk = make_source_disk(vireo, work, fmt)
    src = Vm(vireo, work, f"src-{fmt}", ["--kernel", kernel, "--memory", "64M",
                                         "--disk", f"path={src_disk},format={fmt}", *SRC_EXTRA])
    procs.append(src)
    wait_for(lambda: len(blk_lines(serial_text(src.serial))) >= 5, 60, f"{fmt}: the guest's rounds")
    dst_disk = os.path.join(work, f"dst-{fmt}.{fmt}")
    img(vireo, "create", "-f", fmt, dst_disk, str(DISK))
    dst = incoming_with(vireo, work, f"dst-{fmt}",
                        ["--disk", f"path={dst_disk},format={fmt}", *DST_EXTRA])
    procs.append(dst)
    migrate(src, dst.uri, max_downtime_ms=300, bandwidth_mbps=bandwidth_mbps, block=True)
    try:
        rc = src.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise Failure(f"{fmt}: the source did not exit: {src.api('GET', '/vm/migrate')}")
    m = re.search(r"migrated to \S+: (\d+) rounds, .* downtime (\d+) ms, total (\d+) ms; block: "
                  r"(\d+) KiB of disk sent for (\d+) KiB of disks", src.stderr())
    check(rc == 0 and m, f"{fmt}: source status {rc}: {src.stderr()}")
    rounds, downtime, total, disk_sent, disk_total = (int(x) for x in m.groups())
    check(disk_total == DISK >> 10 and disk_sent >= disk_total, f"{fmt}: disk stats {m.group(0)}")
    if bandwidth_mbps:
        # The capped copy lasts long enough for the guest to write chunks already sent.
        check(disk_sent > disk_total, f"{fmt}: no chunk was sent again: {m.group(0)}")
    check("incoming migration complete" in dst.stderr(), f"{fmt}: destination: {dst.stderr()}")

    # The lines continue across the move with no gap or repeat (the guest's first round on the
    # destination read back the block the source wrote last).
    wait_for(lambda: len(blk_lines(serial_text(dst.serial))) >= 5, 30, f"{fmt}: rounds on the destination")
    st, _ = dst.api("PUT", "/vm/stop")
    check(st == 200 and dst.wait_exit() == 0, f"{fmt}: stopping the destination")
    src_lines = blk_lines(serial_text(src.serial))
    seq = blk_lines(serial_text(src.serial) + serial_text(dst.serial))
    check(seq == list(range(seq[0], seq[0] + len(seq))),
          f"{fmt}: rounds not contiguous across the move around {src_lines[-1]}")
    check(seq[0] == 0 and len(seq) >= len(src_lines) + 5, f"{fmt}: too few rounds after the move")

    # The destination's disk: the source's final disk plus the writes made on the destination
    # (a round's write can fall just before or after the move, and the last round's write may
    # have been done without its line: both are allowed, nothing else).
    expected = bytearray(to_raw(src_disk, fmt, work, f"src-{fmt}"))
    for n in blk_lines(serial_text(dst.serial)):
        expected[block_of(n) * BLOCK:(block_of(n) + 1) * BLOCK] = pattern(n)
    got = to_raw(dst_disk, fmt, work, f"dst-{fmt}")
    check(len(got) == DISK, f"{fmt}: destination disk is {len(got)} bytes")
    if got != bytes(expected):
        n = seq[-1] + 1
        expected[block_of(n) * BLOCK:(block_of(n) + 1) * BLOCK] = pattern(n)
        if got != bytes(expected):
            diff = [i // 65536 for i in range(0, DISK, 512) if got[i:i + 512] != expected[i:i + 512]]
            raise Failure(f"{fmt}: the destination disk differs in 64 KiB chunks {sorted(set(diff))[:10]}")
    return (f"{fmt}: {rounds} rounds, downtime {downtime} ms, total {total} ms, {disk_sent} KiB of disk "
            f"sent, {len(src_lines)} rounds on the source then {len(seq) - len(src_lines)} on the destination")


def mode_main(vireo, mode):
    SRC_EXTRA[:] = mode
    DST_EXTRA[:] = mode if mode[0] == "--accel" else []
    work = tempfile.mkdtemp(prefix="vireo-blkmig-mode-")
    t0 = time.monotonic()
    procs = []
    try:
        # Uncapped: the cap of the main run (re-sent chunks) is proved there; a software-CPU
        # guest writes fast enough to keep a capped copy from converging.
        results = [migrate_and_compare(vireo, work, "raw", procs, 0),
                   migrate_and_compare(vireo, work, "qcow2", procs, 0)]
        print(f"PASS block_migration_test {' '.join(mode)}: " + "; ".join(results) +
              f", in {time.monotonic() - t0:.1f} s")
        return 0
    except Failure as e:
        print(f"FAIL block_migration_test {' '.join(mode)}: {e}")
        print_log_tails(work, ("src-raw", "dst-raw", "src-qcow2", "dst-qcow2"))
        return 1
    finally:
        for p in procs:
            p.kill()


def main():
    vireo, guests = sys.argv[1:3]
    if sys.argv[3:] in (["--accel", "emu"], ["--irqchip", "split"]):
        return mode_main(vireo, sys.argv[3:])
    kernel = os.path.join(guests, "blk_migrate.elf")
    work = tempfile.mkdtemp(prefix="vireo-blkmig-")
    t0 = time.monotonic()
    procs = []
    messages = []
    try:
        # Refusals, on one source VM.
        disk = make_source_disk(vireo, work, "raw")
        src = Vm(vireo, work, "src", ["--kernel", kernel, "--memory", "64M",
                                      "--disk", f"path={disk}"])
        procs.append(src)
        wait_for(lambda: len(blk_lines(serial_text(src.serial))) >= 3, 60, "the guest's rounds")
        st, ans = src.api("PUT", "/vm/migrate", json.dumps({"uri": "tcp:127.0.0.1:1", "block": 1}))
        check(st == 400 and "block" in ans["error"], f"block: 1: {st} {ans}")

        dst = Incoming(vireo, work, "nodisk")
        procs.append(dst)
        migrate(src, dst.uri, block=True)
        ans = expect_refused(vireo, src, dst, "pass `--disk path=FILE", "no --disk")
        check(ans.get("block") is True and ans.get("disk_bytes_total") == DISK,
              f"GET /vm/migrate block fields: {ans}")
        messages.append(ans["error"])

        small = os.path.join(work, "small.raw")
        img(vireo, "create", "-f", "raw", small, str(8 << 20))
        dst = incoming_with(vireo, work, "small", ["--disk", f"path={small}"])
        procs.append(dst)
        migrate(src, dst.uri, block=True)
        messages.append(expect_refused(vireo, src, dst, "same virtual size", "disk too small")["error"])

        dst = incoming_with(vireo, work, "noblock", ["--disk", f"path={small}"])
        procs.append(dst)
        migrate(src, dst.uri)
        messages.append(expect_refused(vireo, src, dst, "does not send its disks", "no block")["error"])

        # The connection cut in the middle of the disk copy: the source writes on, the
        # destination exits 1 without running the guest.
        cut_disk = os.path.join(work, "cut.raw")
        img(vireo, "create", "-f", "raw", cut_disk, str(DISK))
        dst = incoming_with(vireo, work, "cut", ["--disk", f"path={cut_disk}"])
        procs.append(dst)
        proxy = Proxy(dst.port, "cut", 1 << 20)
        migrate(src, proxy.uri, block=True)
        ans = wait_migration_end(src)
        check(ans["state"] == "failed", f"cut: {ans}")
        check(dst.wait_exit() == 1 and "the stream broke off" in dst.stderr(), f"cut: {dst.stderr()}")
        check(not blk_lines(serial_text(dst.serial)), "cut: the destination ran the guest")
        n = blk_lines(serial_text(src.serial))[-1]
        wait_for(lambda: blk_lines(serial_text(src.serial))[-1] >= n + 3, 10, "cut: the source to keep writing")
        messages.append(ans["error"])
        st, _ = src.api("PUT", "/vm/stop")

        results = [migrate_and_compare(vireo, work, "raw", procs, 40),
                   migrate_and_compare(vireo, work, "qcow2", procs, 0)]
        print("\n".join("  refused: " + msg for msg in messages))
        print("PASS block_migration_test: " + "; ".join(results) +
              f"; {len(messages)} refusals, in {time.monotonic() - t0:.1f} s")
        return 0
    except Failure as e:
        print(f"FAIL block_migration_test: {e}")
        print_log_tails(work, ("src", "nodisk", "small", "noblock", "cut", "src-raw", "dst-raw",
                               "src-qcow2", "dst-qcow2"))
        return 1
    finally:
        for p in procs:
            p.kill()


if __name__ == "__main__":
    sys.exit(main())
