#!/usr/bin/env python3
"""Device state across snapshot/restore and live migration: virtio-net, virtio-balloon and
virtio-vsock, with the snapshot_devices guest (tests/guests/snapshot_devices.cc), which every
round ARPs for the host, follows the balloon's target and echoes "round N" through a vsock
connection, and prints "round N net ok balloon A vsock ok".

    device_state_test.py VIREO GUESTS_DIR [--accel emu | --irqchip split]

(With --accel emu or --irqchip split only the balloon and vsock cases run, in that mode.)

It proves:
  - net: a VM on a tap in a network namespace, snapshotted between its ARPs, restores on the
    same tap (re-attached by name; the random MAC kept) and its rounds go on at N+1 with ARP
    replies (the rx and tx rings continued); the restored device announced the guest (net0's
    `announcements` counter is 1); a restore where the tap does not exist is refused naming the
    tap and how to create it; `--restore --net tap=OTHER` re-attaches the device to another tap
    and goes on there, while a mac= or a --net count that does not match is refused;
  - balloon: the target and the guest's actual survive a restore (GET /vm/balloon), the
    guest's rounds go on with the same balloon, and a target set after the restore is followed;
  - vsock: after a restore the guest gets VIRTIO_VSOCK_EVENT_TRANSPORT_RESET ("vsock transport
    reset"), and its rounds go on through new connections to the socket re-created at the same
    path;
  - live migration of a VM with a balloon, a net and a vsock device between two network namespaces
    (each with its own tap of the same name and address, joined by a veth pair that carries the
    migration, as two hosts on one network would be): the rounds run on without a gap or a
    repeat, with ARP replies from the destination's tap, the balloon carried, the guest
    announced on the destination, and vsock's transport reset seen there, whose socket (bound
    at the same path while the source ran) outlives the source.
Exits 77 (skipped) when no network namespace can be made or there is no /dev/net/tun.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_test import (  # noqa: E402
    Failure, Vm, check, expect_refused, print_log_tails, serial_text, wait_for)
from migration_test import Incoming, migrate  # noqa: E402

TAP = "vtap0"
HOST_IP = "10.0.2.1/24"  # the guest (10.0.2.15) ARPs for 10.0.2.1
PAGE = 4096
ROUND = re.compile(r"^round (\d+) net (ok|-) balloon (\d+) vsock (ok|-)$", re.M)


def ip(*args):
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    check(r.returncode == 0, f"ip {' '.join(args)}: {r.stderr.strip()}")


class Namespaces:
    """Network namespaces made for this test, deleted at the end; a `vireo` per namespace (a
    wrapper script running it there)."""

    def __init__(self, vireo, work):
        self.vireo, self.work, self.names = os.path.abspath(vireo), work, []

    def add(self, name, tap=TAP):
        ns = f"vireo-ds{os.getpid()}-{name}"
        ip("netns", "add", ns)
        self.names.append(ns)
        ip("-n", ns, "link", "set", "lo", "up")
        if tap:  # persistent, so a restored or migrated VM finds it there
            ip("-n", ns, "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr")
            ip("-n", ns, "addr", "add", HOST_IP, "dev", tap)
            ip("-n", ns, "link", "set", tap, "up")
        wrapper = os.path.join(self.work, f"vireo-in-{name}")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec ip netns exec {ns} {self.vireo} "$@"\n')
        os.chmod(wrapper, 0o755)
        return ns, wrapper

    def delete(self):
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def device_rounds(text):
    """[(n, net, balloon, vsock)] of the whole round lines in `text`."""
    check("FAIL" not in text, f"snapshot_devices failed: {text[-400:]}")
    return [(int(n), net, int(b), vs) for n, net, b, vs in ROUND.findall(text)]


def pause(vm):
    st, ans = vm.api("PUT", "/vm/pause")
    check(st == 200, f"pause: {st} {ans}")
    return len(device_rounds(serial_text(vm.serial)))


def snapshot_and_stop(vm, path):
    st, ans = vm.api("PUT", "/vm/snapshot", json.dumps({"path": path}))
    check(st == 200, f"snapshot: {st} {ans}")
    vm.stop()


def check_carries_on(before, after, what, more=4):
    """The guest's output before the pause and after the restore (or the move) is one run of
    rounds: contiguous, at least `more` new ones. (A pause can fall mid-line, so the two serial
    files are read as one.) Returns the rounds after the break."""
    wait_for(lambda: len(device_rounds(serial_text(before) + serial_text(after))) >=
             len(device_rounds(serial_text(before))) + more, 60, f"{what}: rounds after the break")
    first = device_rounds(serial_text(before))
    seq = device_rounds(serial_text(before) + serial_text(after))
    counts = [r[0] for r in seq]
    check(counts == list(range(1, len(counts) + 1)),
          f"{what}: rounds not contiguous across the break after {len(first)} rounds: "
          f"{counts[max(len(first) - 3, 0):][:8]}")
    return seq[len(first):]


def counter(vm, device, name):
    st, ans = vm.api("GET", "/vm/counters")
    check(st == 200, f"counters: {st} {ans}")
    for d in ans["devices"]:
        if d["name"] == device:
            return d["counters"].get(name)
    raise Failure(f"no device {device} in {ans['devices']}")


def balloon(vm):
    st, ans = vm.api("GET", "/vm/balloon")
    check(st == 200, f"GET /vm/balloon: {st} {ans}")
    return ans["num_pages"], ans["actual_pages"]


def wait_running(vm):
    # The API answers before the machine is built ("starting" until then).
    wait_for(lambda: vm.api("GET", "/vm")[1]["state"] == "running", 20, "the VM to run")


def set_balloon(vm, pages):
    st, ans = vm.api("PUT", "/vm/balloon", json.dumps({"target_bytes": pages * PAGE}))
    check(st == 200, f"PUT /vm/balloon: {st} {ans}")
    wait_for(lambda: balloon(vm) == (pages, pages), 30, f"the guest to reach {pages} pages")


def net_case(kernel, ns, work, vms):
    _, in_a = ns.add("net")
    _, in_empty = ns.add("empty", tap=None)
    _, in_other = ns.add("other", tap="vother")
    vm = Vm(in_a, work, "net", ["--kernel", kernel, "--net", f"tap={TAP}"])
    vms.append(vm)
    wait_for(lambda: len(device_rounds(serial_text(vm.serial))) >= 3, 60, "net: 3 rounds")
    pause(vm)
    snap = os.path.join(work, "snap-net")
    snapshot_and_stop(vm, snap)
    refused = expect_refused(in_empty, work, ["--restore", snap], 1, f"tap '{TAP}', which does not exist",
                             "restore without the tap")
    check("ip tuntap add" in refused, f"the refusal does not say how to create the tap: {refused}")
    expect_refused(in_a, work, ["--restore", snap, "--net", f"tap={TAP},mac=52:54:00:00:00:01"], 1,
                   "keeps the snapshot's MAC", "restore with --net mac=")
    expect_refused(in_a, work, ["--restore", snap, "--net", "tap=a", "--net", "tap=b"], 1,
                   "give one --net tap=NAME per device", "restore with two --net for one device")
    # --net tap=NAME re-attaches the device to another tap (another host's name for it).
    other = Vm(in_other, work, "net_other", ["--restore", snap, "--net", "tap=vother"])
    vms.append(other)
    after = check_carries_on(vm.serial, other.serial, "net on another tap")
    check(all(x[1] == "ok" for x in after), f"net on another tap: rounds without ARP replies {after[:3]}")
    other.stop()
    r = Vm(in_a, work, "net_restored", ["--restore", snap])
    vms.append(r)
    after = check_carries_on(vm.serial, r.serial, "net")
    check(all(x[1] == "ok" for x in after), f"net: rounds without ARP replies {after[:3]}")
    check(counter(r, "net0", "announcements") == 1, "net: the restored device did not announce the guest")
    r.stop()
    return refused


# `--accel emu` / `--irqchip split` (a trailing option pair): options for every VM the balloon
# and vsock cases boot, and for their restores (the irqchip mode comes from the snapshot).
RUN_EXTRA = []
RESTORE_EXTRA = []


def balloon_case(vireo, kernel, work, vms):
    vm = Vm(vireo, work, "balloon", ["--kernel", kernel, "--balloon", *RUN_EXTRA])
    vms.append(vm)
    wait_running(vm)
    set_balloon(vm, 1000)
    pause(vm)
    snap = os.path.join(work, "snap-balloon")
    snapshot_and_stop(vm, snap)
    r = Vm(vireo, work, "balloon_restored", ["--restore", snap, "--paused", *RESTORE_EXTRA])
    vms.append(r)
    wait_for(lambda: r.api("GET", "/vm")[1]["state"] == "paused", 20, "balloon: the restored VM")
    check(balloon(r) == (1000, 1000), f"balloon: target and actual after the restore {balloon(r)}")
    st, _ = r.api("PUT", "/vm/resume")
    check(st == 200, "balloon: resume")
    after = check_carries_on(vm.serial, r.serial, "balloon")
    check(all(x[2] == 1000 for x in after), f"balloon: the guest's balloon changed {after[:3]}")
    set_balloon(r, 300)  # the restored device and driver go on: deflate
    r.stop()


class EchoServer:
    """The host side of the guest's vsock connections: echoes at PATH (the VMM's <uds>_5000)."""

    def __init__(self, path):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        self.connections = 0
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            conn, _ = self.listener.accept()
            self.connections += 1
            threading.Thread(target=self.echo, args=(conn,), daemon=True).start()

    @staticmethod
    def echo(conn):
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(data)
            except OSError:
                pass


def vsock_case(vireo, kernel, work, vms):
    uds = os.path.join(work, "v.sock")
    echo = EchoServer(uds + "_5000")
    vm = Vm(vireo, work, "vsock", ["--kernel", kernel, "--vsock", f"cid=3,uds={uds}", *RUN_EXTRA])
    vms.append(vm)
    wait_for(lambda: len(device_rounds(serial_text(vm.serial))) >= 3, 60, "vsock: 3 rounds")
    pause(vm)
    snap = os.path.join(work, "snap-vsock")
    snapshot_and_stop(vm, snap)
    served = echo.connections
    r = Vm(vireo, work, "vsock_restored", ["--restore", snap, *RESTORE_EXTRA])
    vms.append(r)
    after = check_carries_on(vm.serial, r.serial, "vsock")
    check("vsock transport reset" in serial_text(r.serial), "vsock: the guest saw no transport reset")
    check(all(x[3] == "ok" for x in after), f"vsock: rounds without an echo {after[:3]}")
    # The pause can fall after a round's echo, while the guest waits for the host's RST: that
    # round then ends with the transport reset and prints without a new connection.
    check(echo.connections >= served + len(after) - 1,
          f"vsock: the restored VM made {echo.connections - served} new connections in "
          f"{len(after)} rounds")
    check(os.path.exists(uds), "vsock: the host socket was not re-created")
    r.stop()


def migration_case(kernel, ns, work, vms):
    src_ns, in_a = ns.add("src")
    dst_ns, in_b = ns.add("dst")
    ip("-n", src_ns, "link", "add", "vmig", "type", "veth", "peer", "name", "vmig", "netns", dst_ns)
    ip("-n", src_ns, "addr", "add", "10.9.0.1/24", "dev", "vmig")
    ip("-n", dst_ns, "addr", "add", "10.9.0.2/24", "dev", "vmig")
    ip("-n", src_ns, "link", "set", "vmig", "up")
    ip("-n", dst_ns, "link", "set", "vmig", "up")
    uds = os.path.join(work, "mig.sock")
    EchoServer(uds + "_5000")
    src = Vm(in_a, work, "mig_src", ["--kernel", kernel, "--net", f"tap={TAP}", "--balloon",
                                     "--vsock", f"cid=3,uds={uds}"])
    vms.append(src)
    wait_running(src)
    set_balloon(src, 800)
    dst = Incoming(in_b, work, "mig_dst", listen="10.9.0.2")
    vms.append(dst)
    migrate(src, dst.uri, max_downtime_ms=300)
    try:
        rc = src.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise Failure(f"the source did not exit: {src.api('GET', '/vm/migrate')}")
    check(rc == 0, f"the source exited {rc}: {src.stderr()[-300:]}")
    after = check_carries_on(src.serial, dst.serial, "migration")
    check(all(x[1] == "ok" and x[2] == 800 and x[3] == "ok" for x in after),
          f"migration: rounds after the move {after[:3]}")
    check("vsock transport reset" in serial_text(dst.serial), "migration: the guest saw no vsock transport reset")
    # The destination bound the socket path while the source ran; the source's exit left it.
    check(os.path.exists(uds), "migration: the destination's vsock socket is gone")
    check(balloon(dst) == (800, 800), f"migration: balloon on the destination {balloon(dst)}")
    check(counter(dst, "net0", "announcements") == 1, "migration: the guest was not announced")
    st, _ = dst.api("PUT", "/vm/stop")
    check(st == 200, "migration: stop the destination")
    return len(after)


def mode_main(vireo, guests, mode):
    """The balloon and vsock cases with `mode` (--accel emu or --irqchip split)."""
    RUN_EXTRA[:] = mode
    RESTORE_EXTRA[:] = mode if mode[0] == "--accel" else []
    kernel = os.path.join(guests, "snapshot_devices.elf")
    work = tempfile.mkdtemp(prefix="vireo-devstate-mode-")
    vms = []
    try:
        balloon_case(vireo, kernel, work, vms)
        vsock_case(vireo, kernel, work, vms)
        print(f"PASS device_state_test {' '.join(mode)}: balloon and vsock restored and carried on")
        shutil.rmtree(work, ignore_errors=True)
        return 0
    except Failure as e:
        print(f"FAIL device_state_test {' '.join(mode)}: {e}")
        print_log_tails(work, ("balloon", "balloon_restored", "vsock", "vsock_restored"))
        return 1
    finally:
        for v in vms:
            v.kill()


def main():
    vireo, guests = sys.argv[1:3]
    if sys.argv[3:] in (["--accel", "emu"], ["--irqchip", "split"]):
        return mode_main(vireo, guests, sys.argv[3:])
    if not os.path.exists("/dev/net/tun"):
        print("SKIP device_state_test: no /dev/net/tun")
        return 77
    probe = f"vireo-ds{os.getpid()}-probe"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        print("SKIP device_state_test: cannot create a network namespace (no CAP_NET_ADMIN?)")
        return 77
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    kernel = os.path.join(guests, "snapshot_devices.elf")
    work = tempfile.mkdtemp(prefix="vireo-devstate-")
    ns = Namespaces(vireo, work)
    vms = []
    try:
        refused = net_case(kernel, ns, work, vms)
        balloon_case(vireo, kernel, work, vms)
        vsock_case(vireo, kernel, work, vms)
        moved = migration_case(kernel, ns, work, vms)
        print(f"  refused: {refused}")
        print(f"PASS device_state_test: net, balloon and vsock restored and carried on; "
              f"net+balloon+vsock migrated ({moved} rounds on the destination)")
        shutil.rmtree(work, ignore_errors=True)
        return 0
    except Failure as e:
        print(f"FAIL device_state_test: {e}")
        print_log_tails(work, ("net", "net_restored", "net_other", "balloon", "balloon_restored", "vsock",
                               "vsock_restored", "mig_src", "mig_dst"))
        return 1
    finally:
        for v in vms:
            v.kill()
        ns.delete()


if __name__ == "__main__":
    sys.exit(main())
