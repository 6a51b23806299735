#!/usr/bin/env python3
"""Snapshot and restore end to end, with the snapshot_counter guest.

    snapshot_test.py VIREO GUESTS_DIR [--accel emu | --irqchip split]

With --accel emu it runs emu_main() instead (the software CPU, the HPET and the
cross-accelerator restores; see there), with --irqchip split split_main().

The guest hashes a 16 MiB buffer at CPL3 every round, checks it against the hash it left the
round before, dirties 64 pages and prints "count N verified V sum S". It proves:
  - PUT /vm/snapshot is refused (409) while the VM runs, and a diff before any full snapshot;
  - a full snapshot of the paused VM restores with `vireo run --restore DIR`: the counter
    continues at N+1 and the guest verifies the memory hash it computed before the snapshot
    (the vCPU, its TSC, the interrupt controllers and the UART carry on; memory is exact);
  - a diff snapshot on top of the full one restores at its own point, and so does a diff of
    a restored VM on top of that diff (a chain of three); a diff writes far less memory;
  - --paused restores the VM paused: no output until PUT /vm/resume;
  - a VM with a virtio disk and a virtio-rng (snapshot_virtio guest), on virtio-pci and on
    virtio-mmio, snapshotted between requests, restores and goes on with its next round on the
    same queues without re-initialising them: rng and block requests complete (interrupts
    arrive), and the disk file holds the last round's sector; the restore re-opens the disk by
    path, and a snapshot whose disk is gone is refused naming it; a VM with --console (not
    driven by this guest) snapshots and restores with the counter continuing (net, balloon and
    vsock: device_state_test.py);
  - every damaged snapshot is refused with its own message and exit status 1: a truncated
    state file, a foreign file, another format version, a checksum mismatch, a memory file
    of the wrong size, a missing directory, a diff whose parent is gone; --restore with a
    guest-describing option (--memory) is a usage error (status 2).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from unix_http import UnixConnection

PREFIX = "/api/v1"


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def call(sock, method, path, body=""):
    conn = UnixConnection(sock)
    try:
        conn.request(method, PREFIX + path, body=body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def serial_text(serial_path):
    if not os.path.exists(serial_path):
        return ""
    with open(serial_path, "rb") as f:
        return f.read().decode(errors="replace").replace("\r", "")


def print_log_tails(work, names):
    """After a failure: the last lines of each named VM's stderr and serial files in `work`."""
    for name in names:
        for ext in ("stderr", "serial"):
            p = os.path.join(work, f"{name}.{ext}")
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    print(f"--- {name}.{ext} (tail):\n" + "".join(f.readlines()[-6:]))


def rounds(serial_path, prefix=""):
    """[(count, verified, sum)] of the whole lines, in order. A pause can land in the middle of
    a line: `prefix` is the start of it that the VM snapshotted there had already printed."""
    text = prefix + serial_text(serial_path)
    check("MISMATCH" not in text, f"guest saw its memory change: {text[-300:]}")
    return [(int(n), int(v, 16), int(s, 16))
            for n, v, s in re.findall(r"^count (\d+) verified 0x([0-9a-f]+) sum 0x([0-9a-f]+)\n", text, re.M)]


class Last(tuple):
    """The last whole round before a pause, and `tail`: what followed it (a partial line)."""


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise Failure(f"timed out waiting for {what}")


def accepting(path):
    """Whether a Unix socket at `path` accepts a connection now."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Vm:
    def __init__(self, vireo, work, name, args):
        self.serial = os.path.join(work, f"{name}.serial")
        self.prefix = ""  # a restored VM: the partial line its snapshot was taken in
        self.sock = os.path.join(work, f"{name}.sock")
        self.log = open(os.path.join(work, f"{name}.stderr"), "w+")
        self.proc = subprocess.Popen([vireo, "run", *args, "--serial", f"file:{self.serial}",
                                      "--api-socket", self.sock, "--no-reboot"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        # The socket file exists from bind(), a moment before listen(): wait until it accepts.
        wait_for(lambda: accepting(self.sock) or self.proc.poll() is not None, 20, "the API socket")
        check(self.proc.poll() is None, f"vireo exited early with {self.proc.returncode}: {self.stderr()}")

    def stderr(self):
        self.log.seek(0)
        return self.log.read()

    def rounds(self):
        return rounds(self.serial, self.prefix)

    def wait_rounds(self, n):
        wait_for(lambda: len(self.rounds()) >= n, 90, f"{n} rounds")

    def api(self, method, path, body=""):
        return call(self.sock, method, path, body)

    def pause(self):
        st, ans = self.api("PUT", "/vm/pause")
        check(st == 200, f"pause: {st} {ans}")
        last = Last(self.rounds()[-1])
        text = self.prefix + serial_text(self.serial)
        last.tail = text[text.rfind("\n") + 1:]
        return last

    def snapshot(self, path, kind):
        st, ans = self.api("PUT", "/vm/snapshot", json.dumps({"path": path, "type": kind}))
        check(st == 200 and ans["type"] == kind and ans["path"] == path, f"snapshot {kind}: {st} {ans}")
        return ans

    def stop(self):
        st, ans = self.api("PUT", "/vm/stop")
        check(st == 200, f"stop: {st} {ans}")
        rc = self.proc.wait(timeout=10)
        check(rc == 0, f"stop: status {rc}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def check_continues(vm, last, what):
    """The restored guest's first round is last+1 and verifies the hash `last` left."""
    vm.prefix = last.tail
    vm.wait_rounds(4)
    seq = vm.rounds()
    n, verified, _ = seq[0]
    check(n == last[0] + 1, f"{what}: first count after restore {n}, expected {last[0] + 1}")
    check(verified == last[2], f"{what}: guest verified {verified:#x}, the snapshot's last sum was {last[2]:#x}")
    check([r[0] for r in seq] == list(range(n, n + len(seq))), f"{what}: counter not contiguous {seq[:6]}")


def virtio_rounds(serial_path):
    """[round number] of snapshot_virtio's "round N ok ..." lines."""
    if not os.path.exists(serial_path):
        return []
    with open(serial_path, "rb") as f:
        text = f.read().decode(errors="replace").replace("\r", "")
    check("FAIL" not in text, f"snapshot_virtio failed: {text[-300:]}")
    return [int(n) for n in re.findall(r"^round (\d+) ok rng [0-9a-f]+ sector \d+$", text, re.M)]


def virtio_case(vireo, guests, work, transport, vms, run_extra=(), restore_extra=()):
    """snapshot_virtio with --disk and --rng on `transport`: snapshot, restore, carry on
    (`run_extra`, `restore_extra`: options for the first VM and for the restored one)."""
    kernel = os.path.join(guests, "snapshot_virtio.elf")
    img = os.path.join(work, f"disk-{transport}.img")
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    snap = os.path.join(work, f"virtio-{transport}")
    vm = Vm(vireo, work, f"virtio_{transport}",
            ["--kernel", kernel, "--transport", transport, "--disk", f"path={img}", "--rng",
             *run_extra])
    vms.append(vm)
    wait_for(lambda: len(virtio_rounds(vm.serial)) >= 3, 60, f"{transport}: 3 rounds")
    st, ans = vm.api("PUT", "/vm/pause")
    check(st == 200, f"{transport}: pause: {st} {ans}")
    last = virtio_rounds(vm.serial)[-1]
    info = vm.snapshot(snap, "full")
    vm.stop()
    r = Vm(vireo, work, f"virtio_{transport}_restored", ["--restore", snap, *restore_extra])
    vms.append(r)
    wait_for(lambda: len(virtio_rounds(r.serial)) >= 4, 60, f"{transport}: rounds after restore")
    r.stop()
    seq = virtio_rounds(r.serial)
    check(seq[0] == last + 1, f"{transport}: first round after restore {seq[0]}, expected {last + 1}")
    check(seq == list(range(seq[0], seq[0] + len(seq))), f"{transport}: rounds not contiguous {seq[:6]}")
    with open(r.serial, errors="replace") as f:
        check("ready" not in f.read(), f"{transport}: the restored guest re-initialised its devices")
    n = seq[-1]
    with open(img, "rb") as f:
        f.seek((n % 64) * 512)
        sector = f.read(512)
    check(sector == bytes((n * 7 + i) & 0xff for i in range(512)),
          f"{transport}: the disk does not hold round {n}'s sector")
    return snap, img, info, len(seq)


def expect_refused(vireo, work, args, status, phrase, what):
    r = subprocess.run([vireo, "run", *args, "--serial", "none"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == status and phrase in r.stderr,
          f"{what}: expected status {status} and {phrase!r}, got {r.returncode}: {r.stderr.strip()}")
    return r.stderr.strip()


def kvm_usable():
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def emu_main(vireo, guests):
    """`--accel emu`: the software CPU's snapshots (its local APIC, IOAPIC, PICs and PIT in the
    state file) with the HPET on, full and diff, and across accelerators: the emu snapshot
    restored on KVM, and a snapshot of a VM booted on KVM (HPET on) restored on emu and on KVM.
    Each restore continues the counter at N+1 with the guest's memory hash verified."""
    kernel = os.path.join(guests, "snapshot_counter.elf")
    work = tempfile.mkdtemp(prefix="vireo-snap-emu-")
    emu = ["--accel", "emu"]
    t0 = time.monotonic()
    vms = []
    names = ["emu", "emu_full_on_emu", "emu_diff_on_emu", "emu_on_kvm", "kvm", "kvm_on_emu",
             "kvm_on_kvm", "virtio_mmio", "virtio_mmio_restored", "virtio_pci",
             "virtio_pci_restored"]
    done = []
    try:
        full, diff = os.path.join(work, "emu-full"), os.path.join(work, "emu-diff")
        vm = Vm(vireo, work, "emu", ["--kernel", kernel, *emu, "--hpet", "on"])
        vms.append(vm)
        vm.wait_rounds(2)
        last_full = vm.pause()
        info_full = vm.snapshot(full, "full")
        st, _ = vm.api("PUT", "/vm/resume")
        check(st == 200, "resume")
        wait_for(lambda: vm.rounds()[-1][0] >= last_full[0] + 2, 90, "rounds after the full snapshot")
        last_diff = vm.pause()
        info_diff = vm.snapshot(diff, "diff")
        # The software CPU's dirty log records exactly the pages written: the guest's 64 per
        # round at least, far from all its memory.
        check(64 * 4096 * 2 <= info_diff["memory_bytes_written"] < info_full["memory_bytes_written"],
              f"the emu diff wrote {info_diff['memory_bytes_written']} bytes")
        vm.stop()

        r = Vm(vireo, work, "emu_full_on_emu", ["--restore", full, *emu])
        vms.append(r)
        check_continues(r, last_full, "emu snapshot restored on emu")
        r.stop()
        done.append("emu full -> emu")
        r = Vm(vireo, work, "emu_diff_on_emu", ["--restore", diff, *emu])
        vms.append(r)
        check_continues(r, last_diff, "emu diff snapshot restored on emu")
        r.stop()
        done.append("emu diff -> emu")
        for transport in ("mmio", "pci"):
            virtio_case(vireo, guests, work, transport, vms, run_extra=emu, restore_extra=emu)
            done.append(f"snapshot_virtio on {transport}")

        if kvm_usable():
            r = Vm(vireo, work, "emu_on_kvm", ["--restore", full, "--accel", "kvm"])
            vms.append(r)
            check_continues(r, last_full, "emu snapshot restored on KVM")
            r.stop()
            done.append("emu -> KVM")
            kvm_snap = os.path.join(work, "kvm-full")
            k = Vm(vireo, work, "kvm", ["--kernel", kernel, "--hpet", "on"])
            vms.append(k)
            k.wait_rounds(3)
            last_kvm = k.pause()
            k.snapshot(kvm_snap, "full")
            k.stop()
            r = Vm(vireo, work, "kvm_on_emu", ["--restore", kvm_snap, *emu])
            vms.append(r)
            check_continues(r, last_kvm, "KVM snapshot restored on emu")
            r.stop()
            done.append("KVM -> emu")
            r = Vm(vireo, work, "kvm_on_kvm", ["--restore", kvm_snap])
            vms.append(r)
            check_continues(r, last_kvm, "KVM snapshot with the HPET restored on KVM")
            r.stop()
            done.append("KVM (HPET on) -> KVM")
        else:
            print("  no usable /dev/kvm: the cross-accelerator restores are not run")
        print(f"PASS snapshot_test --accel emu (HPET on): {', '.join(done)}; full "
              f"{info_full['memory_bytes_written']} B, diff {info_diff['memory_bytes_written']} B; "
              f"{time.monotonic() - t0:.1f} s")
        shutil.rmtree(work, ignore_errors=True)
        return 0
    except Failure as e:
        print(f"FAIL snapshot_test --accel emu: {e} (passed: {', '.join(done) or 'none'})")
        print_log_tails(work, names)
        return 1
    finally:
        for v in vms:
            v.kill()


def split_main(vireo, guests):
    """`--irqchip split`: KVM's LAPICs with Vireo's IOAPIC, PICs and PIT, whose registers the
    state file carries as the in-kernel ones' would be. A full snapshot restores in split mode
    (the mode comes from the snapshot) and on the software CPU; each restore continues the
    counter at N+1 with the guest's memory hash verified."""
    if not kvm_usable():
        print("SKIP: snapshot_test --irqchip split needs a usable /dev/kvm")
        return 77
    kernel = os.path.join(guests, "snapshot_counter.elf")
    work = tempfile.mkdtemp(prefix="vireo-snap-split-")
    t0 = time.monotonic()
    vms = []
    names = ["split", "split_on_split", "split_on_emu", "virtio_mmio", "virtio_mmio_restored",
             "virtio_pci", "virtio_pci_restored"]
    done = []
    try:
        full = os.path.join(work, "split-full")
        vm = Vm(vireo, work, "split", ["--kernel", kernel, "--irqchip", "split"])
        vms.append(vm)
        vm.wait_rounds(3)
        last = vm.pause()
        vm.snapshot(full, "full")
        st, info = vm.api("GET", "/vm")
        check(st == 200 and info["config"]["irqchip"] == "split", f"GET /vm of the split VM: {info}")
        vm.stop()
        r = Vm(vireo, work, "split_on_split", ["--restore", full])
        vms.append(r)
        wait_for(lambda: r.api("GET", "/vm")[1]["state"] == "running", 60, "the split restore to run")
        st, info = r.api("GET", "/vm")
        check(st == 200 and info["config"]["irqchip"] == "split",
              f"the restored VM's irqchip (from the snapshot): {info}")
        check_continues(r, last, "split snapshot restored (split mode from the snapshot)")
        r.stop()
        done.append("split -> split")
        r = Vm(vireo, work, "split_on_emu", ["--restore", full, "--accel", "emu"])
        vms.append(r)
        # The API answers before the restored machine is built ("starting" until then).
        wait_for(lambda: r.api("GET", "/vm")[1]["state"] == "running", 60, "the emu restore to run")
        st, info = r.api("GET", "/vm")
        check(st == 200 and info["config"]["irqchip"] == "vireo", f"GET /vm on emu: {info}")
        check_continues(r, last, "split snapshot restored on emu")
        r.stop()
        done.append("split -> emu")
        for transport in ("mmio", "pci"):
            virtio_case(vireo, guests, work, transport, vms, run_extra=["--irqchip", "split"])
            done.append(f"snapshot_virtio on {transport}")
        print(f"PASS snapshot_test --irqchip split: {', '.join(done)}; "
              f"{time.monotonic() - t0:.1f} s")
        shutil.rmtree(work, ignore_errors=True)
        return 0
    except Failure as e:
        print(f"FAIL snapshot_test --irqchip split: {e} (passed: {', '.join(done) or 'none'})")
        print_log_tails(work, names)
        return 1
    finally:
        for v in vms:
            v.kill()


def main():
    vireo, guests = sys.argv[1:3]
    if sys.argv[3:] == ["--accel", "emu"]:
        return emu_main(vireo, guests)
    if sys.argv[3:] == ["--irqchip", "split"]:
        return split_main(vireo, guests)
    kernel = os.path.join(guests, "snapshot_counter.elf")
    work = tempfile.mkdtemp(prefix="vireo-snap-")
    t0 = time.monotonic()
    vms = []
    try:
        full, diff1, diff2 = (os.path.join(work, d) for d in ("full", "diff1", "diff2"))
        vm = Vm(vireo, work, "vm1", ["--kernel", kernel])
        vms.append(vm)
        vm.wait_rounds(3)
        st, err = vm.api("PUT", "/vm/snapshot", json.dumps({"path": full}))
        check(st == 409 and "pause it first" in err["error"], f"snapshot while running: {st} {err}")
        st, err = vm.api("PUT", "/vm/snapshot", json.dumps({"path": 5}))
        check(st == 400, f"bad body: {st} {err}")
        last_full = vm.pause()
        st, err = vm.api("PUT", "/vm/snapshot", json.dumps({"path": diff1, "type": "diff"}))
        check(st == 409 and "full snapshot first" in err["error"], f"diff before full: {st} {err}")
        info_full = vm.snapshot(full, "full")
        st, _ = vm.api("PUT", "/vm/resume")
        check(st == 200, "resume")
        wait_for(lambda: vm.rounds()[-1][0] >= last_full[0] + 3, 60, "rounds after the full snapshot")
        last_diff1 = vm.pause()
        info_diff = vm.snapshot(diff1, "diff")
        # The diff holds the pages written since the full snapshot: at least the guest's 64 per
        # round, far from all 256 MiB. (Under shadow paging, as on kvm_pvm, KVM also logs pages
        # the guest only read through a dirty guest PTE, so here it holds the whole buffer.)
        check(64 * 4096 * 3 <= info_diff["memory_bytes_written"] < (256 << 20) // 8,
              f"the diff wrote {info_diff['memory_bytes_written']} bytes")
        vm.stop()

        # Restore the full snapshot: the counter continues where the snapshot was taken.
        r1 = Vm(vireo, work, "restore_full", ["--restore", full])
        vms.append(r1)
        check_continues(r1, last_full, "restore full")
        r1.stop()

        # Restore the diff, paused; then snapshot a diff of the restored VM (chain of three).
        r2 = Vm(vireo, work, "restore_diff", ["--restore", diff1, "--paused"])
        vms.append(r2)
        # The API answers before the restored machine is attached ("stopping" until then).
        wait_for(lambda: r2.api("GET", "/vm")[1]["state"] != "stopping", 20, "the restored VM")
        st, info = r2.api("GET", "/vm")
        check(st == 200 and info["state"] == "paused", f"--paused: {st} {info}")
        time.sleep(0.5)
        check(r2.rounds() == [], f"output while restored paused: {r2.rounds()[:2]}")
        st, _ = r2.api("PUT", "/vm/resume")
        check(st == 200, "resume after --paused")
        check_continues(r2, last_diff1, "restore diff")
        last_diff2 = r2.pause()
        r2.snapshot(diff2, "diff")
        r2.stop()
        r3 = Vm(vireo, work, "restore_diff2", ["--restore", diff2])
        vms.append(r3)
        check_continues(r3, last_diff2, "restore diff of a restored VM")
        r3.stop()

        # Faults: each a clear error.
        def damaged(name, mutate):
            d = os.path.join(work, name)
            shutil.copytree(full, d)
            mutate(d)
            return d
        state = lambda d: os.path.join(d, "state")
        def truncate(d):
            os.truncate(state(d), os.path.getsize(state(d)) - 100)
        def foreign(d):
            shutil.copy(kernel, state(d))
        def version(d):
            with open(state(d), "r+b") as f:
                f.seek(8)
                f.write(b"\x07")
        def corrupt(d):
            with open(state(d), "r+b") as f:
                f.seek(200)
                b = f.read(1)
                f.seek(200)
                f.write(bytes([b[0] ^ 0x40]))
        def memsize(d):
            os.truncate(os.path.join(d, "memory"), 128 << 20)
        cases = [
            ("truncated", truncate, "truncated"),
            ("foreign", foreign, "not a Vireo snapshot"),
            ("version", version, "format version 7"),
            ("corrupt", corrupt, "CRC-32"),
            ("memsize", memsize, "the VM has 268435456 bytes of RAM"),
        ]
        messages = []
        for name, mutate, phrase in cases:
            messages.append(expect_refused(vireo, work, ["--restore", damaged(name, mutate)], 1, phrase, name))
        messages.append(expect_refused(vireo, work, ["--restore", os.path.join(work, "nope")], 1,
                                       "no snapshot in", "missing directory"))
        orphan = os.path.join(work, "orphan")
        shutil.copytree(diff1, orphan)
        shutil.rmtree(full)
        messages.append(expect_refused(vireo, work, ["--restore", orphan], 1, full, "diff without its parent"))
        messages.append(expect_refused(vireo, work, ["--restore", diff1, "--memory", "512M"], 2,
                                       "excludes", "--restore with --memory"))
        # virtio devices: virtio-blk and virtio-rng on both transports.
        t1 = time.monotonic()
        virtio_snaps = [virtio_case(vireo, guests, work, t, vms) for t in ("pci", "mmio")]
        snap, img, _, _ = virtio_snaps[0]
        os.rename(img, img + ".gone")
        messages.append(expect_refused(vireo, work, ["--restore", snap], 1, img, "restore without its disk"))
        con = Vm(vireo, work, "console", ["--kernel", kernel, "--console"])
        vms.append(con)
        con.wait_rounds(1)
        last_con = con.pause()
        con.snapshot(os.path.join(work, "con"), "full")
        con.stop()
        rcon = Vm(vireo, work, "console_restored", ["--restore", os.path.join(work, "con")])
        vms.append(rcon)
        check_continues(rcon, last_con, "restore with --console")
        rcon.stop()
        virtio_s = time.monotonic() - t1
        print("\n".join("  refused: " + m for m in messages))
        print(f"PASS snapshot_test: full {info_full['memory_bytes_written']} B in {info_full['microseconds']} us, "
              f"diff {info_diff['memory_bytes_written']} B in {info_diff['microseconds']} us, "
              f"3 restores, {len(messages)} refusals in {time.monotonic() - t0:.1f} s; virtio-blk+rng "
              f"pci and mmio restored and carried on ({virtio_snaps[0][3]} and {virtio_snaps[1][3]} "
              f"rounds) in {virtio_s:.1f} s")
        shutil.rmtree(work, ignore_errors=True)
        return 0
    except Failure as e:
        print(f"FAIL snapshot_test: {e}")
        print_log_tails(work, ("vm1", "restore_full", "restore_diff", "restore_diff2", "virtio_pci",
                               "virtio_pci_restored", "virtio_mmio", "virtio_mmio_restored",
                               "console", "console_restored"))
        return 1
    finally:
        for v in vms:
            v.kill()


if __name__ == "__main__":
    sys.exit(main())
