#!/usr/bin/env python3
"""Live migration end to end between `vireo run` processes on localhost, with the
snapshot_counter guest (it hashes 16 MiB at CPL3 every round, checks the hash the round before
left, dirties 64 pages and prints "count N verified V sum S" every ~20 ms: a dirtying load).

    migration_test.py VIREO GUESTS_DIR [--accel emu]

(--accel emu: emu_main(), migration between software-CPU processes and on to KVM.)

It proves:
  - PUT /vm/migrate checks its body (400), refuses a paused VM (409), and a destination nobody
    listens on fails through GET /vm/migrate with the VM running on;
  - a destination given a foreign stream or another stream version refuses it by name and
    exits 1;
  - faults during the transfer leave the source running the guest and make the destination
    exit 1 having kept nothing: a corrupted byte (CRC-32 mismatch, the destination's reason
    reaches the source's GET /vm/migrate), a cut connection, a killed destination;
  - a migration of the running, dirtying guest completes: the source exits 0 naming its
    rounds, pages and downtime; the destination continues the counter at exactly N+1 (no line
    lost or repeated) and verifies the memory hash the source's last round left;
  - the migrated VM migrates again, under a bandwidth cap and a 1 ms downtime limit, to a
    third process;
  - an idle guest (api_counter) migrates with its "count N" lines contiguous across the move.
"""
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_test import (  # noqa: E402
    Failure, Vm, call, check, print_log_tails, rounds, serial_text, wait_for)


class Incoming:
    """`vireo run --incoming tcp:LISTEN:0` (127.0.0.1 unless told); the port it printed."""

    def __init__(self, vireo, work, name, extra=(), listen="127.0.0.1"):
        self.serial = os.path.join(work, f"{name}.serial")
        self.sock = os.path.join(work, f"{name}.sock")
        self.log = open(os.path.join(work, f"{name}.stderr"), "w+")
        self.proc = subprocess.Popen([vireo, "run", "--incoming", f"tcp:{listen}:0", *extra, "--serial",
                                      f"file:{self.serial}", "--api-socket", self.sock, "--no-reboot"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        found = []

        def listening():
            m = re.search(rf"waiting for an incoming migration on {re.escape(listen)}:(\d+)", self.stderr())
            if m:
                found.append(int(m.group(1)))
            return bool(m) or self.proc.poll() is not None
        wait_for(listening, 20, "the destination to listen")
        check(found, f"destination exited early: {self.stderr()}")
        self.port = found[0]
        self.uri = f"tcp:{listen}:{self.port}"

    def stderr(self):
        self.log.seek(0)
        return self.log.read()

    def rounds(self):
        return rounds(self.serial)

    def api(self, method, path, body=""):
        return call(self.sock, method, path, body)

    def wait_exit(self, timeout=30):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"the destination did not exit: {self.stderr()}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Proxy:
    """Forwards one connection to `port`; corrupts one byte, or cuts the connection, once
    `at` bytes have gone towards the destination."""

    def __init__(self, port, mode, at):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.uri = f"tcp:127.0.0.1:{self.listener.getsockname()[1]}"
        self.port, self.mode, self.at = port, mode, at
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        client, _ = self.listener.accept()
        upstream = socket.create_connection(("127.0.0.1", self.port))

        def back():
            try:
                while data := upstream.recv(65536):
                    client.sendall(data)
            except OSError:
                pass
        threading.Thread(target=back, daemon=True).start()
        sent = 0
        try:
            while data := client.recv(65536):
                if sent <= self.at < sent + len(data):
                    if self.mode == "cut":
                        upstream.sendall(data[:self.at - sent])
                        break
                    i = self.at - sent
                    data = data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1:]
                upstream.sendall(data)
                sent += len(data)
        except OSError:
            pass
        if self.mode == "cut":
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def counts(serial_path):
    """api_counter's "count N" lines, in order."""
    if not os.path.exists(serial_path):
        return []
    with open(serial_path, "rb") as f:
        text = f.read().decode(errors="replace").replace("\r", "")
    return [int(n) for n in re.findall(r"^count (\d+)$", text, re.M)]


def migrate(vm, uri, **params):
    st, ans = vm.api("PUT", "/vm/migrate", json.dumps({"uri": uri, **params}))
    check(st == 202 and ans["state"] == "active", f"migrate: {st} {ans}")


def wait_migration_end(vm, timeout=60):
    """The final GET /vm/migrate of a migration that failed (the source runs on)."""
    result = []

    def done():
        st, ans = vm.api("GET", "/vm/migrate")
        check(st == 200, f"GET migrate: {st} {ans}")
        result[:] = [ans]
        return ans["state"] != "active"
    wait_for(done, timeout, "the migration to end")
    return result[0]


def expect_source_runs_on(vm, what):
    st, info = vm.api("GET", "/vm")
    check(st == 200 and info["state"] == "running", f"{what}: source state {st} {info}")
    n = vm.rounds()[-1][0]
    wait_for(lambda: vm.rounds()[-1][0] >= n + 3, 10, f"{what}: the source to keep counting")


def expect_failed(vm, dst, phrase_src, phrase_dst, what):
    ans = wait_migration_end(vm)
    check(ans["state"] == "failed" and phrase_src in ans.get("error", ""),
          f"{what}: expected a failure naming {phrase_src!r}, got {ans}")
    rc = dst.wait_exit()
    check(rc == 1 and phrase_dst in dst.stderr(),
          f"{what}: destination status {rc}, expected 1 and {phrase_dst!r}: {dst.stderr()}")
    check(dst.rounds() == [], f"{what}: the destination ran the guest")
    expect_source_runs_on(vm, what)
    return ans["error"]


def check_continues(src_serial, dst, what, timeout=30):
    """The guest's output goes on across the move: the source's serial output followed by the
    destination's is one contiguous count, each round verifying the hash the round before
    left. (The pause can fall mid-line: the line then starts on the source and ends on the
    destination, so the two files are read as one.)"""
    wait_for(lambda: len(dst.rounds()) >= 4, timeout, f"{what}: rounds on the destination")
    src_text, dst_text = serial_text(src_serial), serial_text(dst.serial)
    check("MISMATCH" not in dst_text, f"{what}: the guest saw its memory change")
    before = rounds(src_serial)
    seq = [(int(n), int(v, 16), int(s, 16)) for n, v, s in re.findall(
        r"^count (\d+) verified 0x([0-9a-f]+) sum 0x([0-9a-f]+)$", src_text + dst_text, re.M)]
    counts = [r[0] for r in seq]
    check(counts == list(range(counts[0], counts[0] + len(counts))),
          f"{what}: counter not contiguous across the move around {before[-1][0]}")
    for prev, cur in zip(seq, seq[1:]):
        check(cur[1] == prev[2], f"{what}: round {cur[0]} verified {cur[1]:#x}, round {prev[0]} left {prev[2]:#x}")
    check(len(seq) >= len(before) + 4, f"{what}: too few rounds after the move")
    return before[-1][0]


def raw_stream_refused(vireo, work, name, payload, phrase):
    dst = Incoming(vireo, work, name)
    with socket.create_connection(("127.0.0.1", dst.port)) as s:
        s.sendall(payload)
        s.settimeout(10)
        header = s.recv(12)
        check(len(header) == 12 and struct.unpack("<I", header[:4])[0] == 5,
              f"{name}: no ACK frame from the destination: {header!r}")
    rc = dst.wait_exit()
    check(rc == 1 and phrase in dst.stderr(), f"{name}: status {rc}: {dst.stderr()}")
    return dst.stderr().strip().splitlines()[-1]


STATS = (r"(\d+) rounds, (\d+) pages \((\d+) MiB\) sent, last dirty rate (\d+) pages/s, "
         r"downtime (\d+) ms, total (\d+) ms")


def emu_main(vireo, guests):
    """`--accel emu` on both sides: the dirtying snapshot_counter guest with the HPET on moves
    live between two software-CPU processes (pre-copy driven by the emu's dirty log), and on
    from there to a KVM process when /dev/kvm is usable (the state is accelerator-neutral).
    Each move continues the counter contiguously with every round's memory hash verified."""
    kernel = os.path.join(guests, "snapshot_counter.elf")
    work = tempfile.mkdtemp(prefix="vireo-mig-emu-")
    t0 = time.monotonic()
    procs = []
    done = []
    try:
        src = Vm(vireo, work, "src", ["--kernel", kernel, "--accel", "emu", "--hpet", "on"])
        procs.append(src)
        src.wait_rounds(3)
        dst = Incoming(vireo, work, "dst", ("--accel", "emu"))
        procs.append(dst)
        migrate(src, dst.uri, max_downtime_ms=300)
        try:
            rc = src.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            raise Failure(f"the source did not exit: {src.api('GET', '/vm/migrate')}")
        m = re.search(STATS, src.stderr())
        check(rc == 0 and m, f"emu source status {rc}: {src.stderr()}")
        stats = [int(x) for x in m.groups()]
        # The software CPU interprets the guest's 16 MiB hash every round: seconds a round in
        # the sanitizer build (make test-asan), so the rounds get more time there.
        last = check_continues(src.serial, dst, "emu -> emu migration", timeout=120)
        done.append(f"emu -> emu at count {last} ({stats[0]} rounds, {stats[2]} MiB, downtime "
                    f"{stats[4]} ms)")
        if os.access("/dev/kvm", os.R_OK | os.W_OK):
            dst2 = Incoming(vireo, work, "dst_kvm")
            procs.append(dst2)
            migrate(dst, dst2.uri, max_downtime_ms=300)
            rc = dst.wait_exit(90)
            check(rc == 0 and re.search(STATS, dst.stderr()), f"emu -> KVM: status {rc}: {dst.stderr()}")
            last = check_continues(dst.serial, dst2, "emu -> KVM migration")
            done.append(f"emu -> KVM at count {last}")
            st, _ = call(dst2.sock, "PUT", "/vm/stop")
            check(st == 200 and dst2.wait_exit() == 0, "stop the KVM destination")
        else:
            st, _ = call(dst.sock, "PUT", "/vm/stop")
            check(st == 200 and dst.wait_exit() == 0, "stop the emu destination")
        print(f"PASS migration_test --accel emu (HPET on): {'; '.join(done)} in {time.monotonic() - t0:.1f} s")
        return 0
    except Failure as e:
        print(f"FAIL migration_test --accel emu: {e}")
        print_log_tails(work, ("src", "dst", "dst_kvm"))
        return 1
    finally:
        for p in procs:
            p.kill()


def main():
    vireo, guests = sys.argv[1:3]
    if sys.argv[3:] == ["--accel", "emu"]:
        return emu_main(vireo, guests)
    kernel = os.path.join(guests, "snapshot_counter.elf")
    work = tempfile.mkdtemp(prefix="vireo-mig-")
    t0 = time.monotonic()
    procs = []
    messages = []
    try:
        messages.append(raw_stream_refused(vireo, work, "foreign", b"GET / HTTP/1.1\r\n\r\n",
                                           "not a Vireo migration stream"))
        messages.append(raw_stream_refused(vireo, work, "version", b"VIREOMIG" + struct.pack("<I", 1),
                                           "migration stream version 1; this vireo speaks version 3"))

        src = Vm(vireo, work, "src", ["--kernel", kernel])
        procs.append(src)
        src.wait_rounds(3)
        for body in ({"uri": 5}, {"uri": "unix:/x"}, {"uri": "tcp:a:1", "max_downtime_ms": -1},
                     {"uri": "tcp:a:1", "colour": 1}):
            st, ans = src.api("PUT", "/vm/migrate", json.dumps(body))
            check(st == 400, f"bad body {body}: {st} {ans}")
        st, _ = src.api("PUT", "/vm/pause")
        st, ans = src.api("PUT", "/vm/migrate", json.dumps({"uri": "tcp:127.0.0.1:1"}))
        check(st == 409 and "paused" in ans["error"], f"migrate while paused: {st} {ans}")
        src.api("PUT", "/vm/resume")

        # Nobody listening.
        migrate(src, "tcp:127.0.0.1:1")
        ans = wait_migration_end(src)
        check(ans["state"] == "failed" and "cannot connect" in ans["error"], f"no listener: {ans}")
        expect_source_runs_on(src, "no listener")
        messages.append(ans["error"])

        # A flipped byte in the page stream: the destination's CRC check refuses it.
        dst = Incoming(vireo, work, "corrupt")
        procs.append(dst)
        proxy = Proxy(dst.port, "corrupt", 300000)
        migrate(src, proxy.uri)
        messages.append(expect_failed(src, dst, "", "CRC-32", "corrupt stream"))

        # The connection cut mid-way.
        dst = Incoming(vireo, work, "cut")
        procs.append(dst)
        proxy = Proxy(dst.port, "cut", 2 << 20)
        migrate(src, proxy.uri)
        messages.append(expect_failed(src, dst, "", "the stream broke off", "cut connection"))

        # The destination killed mid-way (a bandwidth limit keeps the transfer going ~2 s).
        dst = Incoming(vireo, work, "killed")
        procs.append(dst)
        migrate(src, dst.uri, bandwidth_mbps=80)
        wait_for(lambda: src.api("GET", "/vm/migrate")[1]["pages_sent"] > 256, 20, "pages to flow")
        st, ans = src.api("PUT", "/vm/pause")
        check(st == 409 and "migration is in progress" in ans["error"], f"pause while migrating: {st} {ans}")
        dst.proc.kill()
        ans = wait_migration_end(src)
        check(ans["state"] == "failed", f"killed destination: {ans}")
        expect_source_runs_on(src, "killed destination")
        messages.append(ans["error"])

        # The real thing: the running, dirtying guest moves and continues exactly.
        dst = Incoming(vireo, work, "dst")
        procs.append(dst)
        migrate(src, dst.uri, max_downtime_ms=300)
        try:
            rc = src.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise Failure(f"the source did not exit: {src.api('GET', '/vm/migrate')}")
        m = re.search(r"migrated to \S+: (\d+) rounds, (\d+) pages \((\d+) MiB\) sent, last dirty rate "
                      r"(\d+) pages/s, downtime (\d+) ms, total (\d+) ms", src.stderr())
        check(rc == 0 and m, f"source status {rc}: {src.stderr()}")
        stats1 = [int(x) for x in m.groups()]
        check(stats1[0] >= 1 and stats1[1] > 0 and stats1[4] < 5000, f"implausible stats {stats1}")
        last = check_continues(src.serial, dst, "migration")
        check(dst.proc.poll() is None, "the destination stopped")
        check("incoming migration complete" in dst.stderr(), f"destination: {dst.stderr()}")

        # ... and again, from the migrated VM, with a bandwidth cap and a 1 ms downtime limit.
        dst2 = Incoming(vireo, work, "dst2")
        procs.append(dst2)
        migrate(dst, dst2.uri, max_downtime_ms=1, bandwidth_mbps=2000)
        rc = dst.wait_exit(60)
        m = re.search(r"(\d+) rounds, (\d+) pages \((\d+) MiB\) sent, last dirty rate (\d+) pages/s, "
                      r"downtime (\d+) ms, total (\d+) ms", dst.stderr())
        check(rc == 0 and m, f"second migration: status {rc}: {dst.stderr()}")
        stats2 = [int(x) for x in m.groups()]
        # How many rounds depends on how much the guest dirtied during the first; the 30-round
        # limit bounds it.
        check(1 <= stats2[0] <= 30, f"second migration: {stats2[0]} pre-copy rounds")
        check_continues(dst.serial, dst2, "second migration")
        st, info = call(dst2.sock, "GET", "/vm")
        check(st == 200 and info["state"] == "running", f"dst2: {st} {info}")
        st, ans = call(dst2.sock, "PUT", "/vm/stop")
        check(dst2.wait_exit() == 0, "dst2 stop")

        # An idle guest (api_counter: a line every ~20 ms, waiting on the TSC, few pages
        # written) converges in one round.
        idle = Vm(vireo, work, "idle", ["--kernel", os.path.join(guests, "api_counter.elf")])
        procs.append(idle)
        wait_for(lambda: len(counts(idle.serial)) >= 3, 20, "the idle guest's lines")
        dst3 = Incoming(vireo, work, "idle_dst")
        procs.append(dst3)
        migrate(idle, dst3.uri)
        rc = idle.proc.wait(timeout=60)
        m = re.search(r"(\d+) rounds, (\d+) pages \((\d+) MiB\) sent, last dirty rate (\d+) pages/s, "
                      r"downtime (\d+) ms, total (\d+) ms", idle.stderr())
        check(rc == 0 and m, f"idle migration: status {rc}: {idle.stderr()}")
        stats3 = [int(x) for x in m.groups()]
        wait_for(lambda: len(counts(dst3.serial)) >= 3, 20, "the idle guest's lines on the destination")
        seq = [int(n) for n in re.findall(r"^count (\d+)$", serial_text(idle.serial) +
                                          serial_text(dst3.serial), re.M)]
        check(seq == list(range(seq[0], seq[0] + len(seq))),
              f"idle migration: lines lost or repeated around {counts(idle.serial)[-1]}")

        print("\n".join("  refused: " + msg for msg in messages))
        print(f"PASS migration_test: counter {last} -> {last + 1}; migration 1: {stats1[0]} rounds, "
              f"{stats1[1]} pages ({stats1[2]} MiB), dirty {stats1[3]} pages/s, downtime {stats1[4]} ms, "
              f"total {stats1[5]} ms; migration 2 (2000 Mbit/s cap, 1 ms max downtime): {stats2[0]} rounds, {stats2[2]} MiB, "
              f"downtime {stats2[4]} ms, total {stats2[5]} ms; idle: {stats3[0]} rounds, {stats3[2]} MiB, "
              f"downtime {stats3[4]} ms, total {stats3[5]} ms; {len(messages)} failures handled "
              f"in {time.monotonic() - t0:.1f} s")
        return 0
    except Failure as e:
        print(f"FAIL migration_test: {e}")
        print_log_tails(work, ("src", "corrupt", "cut", "killed", "dst", "dst2", "idle", "idle_dst"))
        return 1
    finally:
        for p in procs:
            p.kill()


if __name__ == "__main__":
    sys.exit(main())
