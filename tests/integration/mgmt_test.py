#!/usr/bin/env python3
"""The management layer end to end: `vireo daemon` and the virsh-style CLI, with the
api_counter guest (prints "count N" every ~20 ms until its ACPI power button is pressed),
the hello guest (prints and exits with status 85) and the virtio_net guest (ARP + ping).

    mgmt_test.py VIREO GUESTS_DIR DAEMON_API_YAML [SCENARIO...]

Scenarios (all by default), each a function below whose docstring says what it proves:
  definitions toml lifecycle console crash restart twenty_vms bad_inputs snapshots setmem
  migrate remote network api_doc
A daemon runs on a fresh state directory under /tmp; every VM and the daemon are ended at
the end, whatever happens. Exit 0: passed; 1: a check failed (the message says which).
"""
from concurrent.futures import ThreadPoolExecutor
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from unix_http import UnixConnection

VIREO, GUESTS, API_YAML = sys.argv[1:4]
SELECTED = sys.argv[4:]
STARTED = time.monotonic()


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def wait_for(pred, what, timeout=10.0, interval=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise Failure(f"timed out after {timeout}s waiting for: {what}")


class Daemon:
    def __init__(self, root):
        self.root = root
        self.state = os.path.join(root, "state")
        self.sock = os.path.join(root, "d.sock")
        self.proc = None
        self.log = open(os.path.join(root, "daemon.log"), "ab")
        self.used = set()  # (method, path template, status) for the API document check

    def start(self, extra=(), prefix=()):
        self.proc = subprocess.Popen([*prefix, VIREO, "daemon", "--state-dir", self.state, "--socket", self.sock, "-v",
                                      *extra],
                                     stdout=self.log, stderr=self.log)
        wait_for(lambda: self.proc.poll() is not None or self.ping(), "the daemon's socket")
        check(self.proc.poll() is None, f"vireo daemon exited with {self.proc.returncode}: {self.log_text()}")

    def ping(self):
        try:
            return self.api("GET", "/host")[0] == 200
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        check(not os.path.exists(self.sock) or sig == signal.SIGKILL, "the daemon left its socket behind")

    def log_text(self):
        with open(os.path.join(self.root, "daemon.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def api(self, method, path, body=None, raw=False, template=None):
        conn = UnixConnection(self.sock)
        try:
            conn.request(method, "/api/v1" + path, body=body)
            resp = conn.getresponse()
            data = resp.read()
            headers = dict(resp.getheaders())
        finally:
            conn.close()
        self.used.add((method, template or path.split("?")[0], resp.status))
        if raw:
            return resp.status, data, headers
        return resp.status, json.loads(data)

    def cli(self, *args, expect=0, input=None):
        r = subprocess.run([VIREO, *args, "--connect", self.sock], capture_output=True, text=True,
                           input=input, timeout=60)
        check(expect is None or r.returncode == expect,
              f"vireo {' '.join(args)}: exit {r.returncode}, expected {expect}\n{r.stdout}{r.stderr}")
        return r

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def domains(self):
        return {d["name"]: d for d in self.cli_json("list", "--all")["domains"]}

    def console(self, name):
        status, data, headers = self.api("GET", f"/domains/{name}/console?offset=0", raw=True,
                                         template="/domains/{name}/console")
        check(status == 200, f"console of {name}: {status}")
        return data.decode(errors="replace")

    def counts(self, name):
        # Whole lines only: a line still being printed would read as a smaller number.
        return whole_counts(self.console(name))

    def events(self, since=0):
        status, data = self.api("GET", f"/events?since={since}")
        check(status == 200, "events")
        return [(e["domain"], e["type"], e["detail"]) for e in data["events"]]


def whole_counts(text):
    """The counter values of the complete "count N" lines in `text`."""
    return [int(n) for n in re.findall(r"^count (\d+)\r?\n", text, re.M)]


def json_def(name, guest="api_counter", **extra):
    d = {"name": name, "memory": "32M", "vcpus": 1, "kernel": os.path.join(GUESTS, guest + ".elf")}
    d.update(extra)
    return json.dumps(d)


def xml_def(name, guest="api_counter", extra=""):
    # libvirt's own format, as `virsh dumpxml` writes it for a direct-kernel-boot guest.
    return f"""<domain type='kvm'>
  <name>{name}</name>
  <memory unit='KiB'>32768</memory>
  <currentMemory unit='KiB'>32768</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <kernel>{GUESTS}/{guest}.elf</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <cpu mode='host-passthrough'><topology sockets='1' cores='1' threads='1'/></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <memballoon model='none'/>
    {extra}
  </devices>
</domain>
"""


def write(root, name, text):
    path = os.path.join(root, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def vm_pid(d, name):
    return d.cli_json("dominfo", name)["pid"]


# --- scenarios --------------------------------------------------------------------------

def definitions(d, root):
    """XML and JSON definitions: unsupported elements are warned about (refused with
    --strict), dumpxml round-trips what was accepted (defining its output changes nothing),
    the JSON form is the same domain, and definitions persist across a daemon restart."""
    xml = write(root, "x1.xml", xml_def("x1"))
    r = d.cli("define", "--strict", xml, expect=1)
    check("unsupported element /domain/on_poweroff (refused with --strict)" in r.stderr, r.stderr)
    check("x1" not in d.domains(), "a refused definition was stored")
    r = d.cli("define", xml)
    check(r.stdout.startswith(f"Domain 'x1' defined from {xml}"), r.stdout)
    check("warning: unsupported element /domain/on_poweroff" in r.stderr, r.stderr)
    dumped = d.cli("dumpxml", "x1").stdout
    check("<kernel>" in dumped and "<topology sockets=\"1\" cores=\"1\" threads=\"1\"" in dumped, dumped)
    check("on_poweroff" not in dumped, "dumpxml kept an unsupported element")
    again = write(root, "x1-dumped.xml", dumped)
    r = d.cli("define", "--strict", again)  # accepted as-is: nothing unsupported in it
    check(r.stderr == "", f"dumpxml output gave warnings: {r.stderr}")
    check(d.cli("dumpxml", "x1").stdout == dumped, "dumpxml -> define -> dumpxml changed the XML")
    check(d.cli_json("dumpxml", "x1")["memory"] == 32 << 20, "JSON form of the XML domain")
    j = write(root, "j1.json", json_def("j1", rng=True, limits={"memory_hard_limit": "512M"}))
    d.cli("define", j)
    check("<rng model=\"virtio\">" in d.cli("dumpxml", "j1").stdout, "JSON rng -> XML rng")
    doms = d.domains()
    check(doms["x1"]["state"] == "shutoff" and doms["j1"]["state"] == "shutoff", f"list --all: {doms}")
    check(d.cli("list").stdout.count("\n") == 3, "list without --all shows inactive domains")
    check("shut off" in d.cli("list", "--all").stdout, "virsh state names")
    d.stop()
    d.start()
    check({"x1", "j1"} <= set(d.domains()), "definitions did not persist across a daemon restart")
    check(d.cli("dumpxml", "x1").stdout == dumped, "the persisted definition changed")
    d.cli("undefine", "j1")
    check("j1" not in d.domains(), "undefine")


def lifecycle(d, root):
    """start -> running with an id and a pid in its own cgroup with the definition's limits;
    vcpuinfo lists the vCPU threads and vcpupin re-pins one;
    suspend stops the guest (no output) and resume continues it without a gap; reboot
    restarts it; shutdown presses the power button and the guest powers off (shut off,
    reason shutdown); destroy ends it at once (reason destroyed); each step is an event."""
    since = d.api("GET", "/events")[1]["last"]
    d.cli("define", write(root, "life.json", json_def("life", vcpus=2, limits={"cpu_quota_us": 50000})))
    r = d.cli("start", "life")
    check(r.stdout.startswith("Domain 'life' started"), r.stdout)
    info = d.cli_json("dominfo", "life")
    check(info["state"] == "running" and info["id"] >= 1 and info["pid"] > 0, f"dominfo: {info}")
    host = d.api("GET", "/host")[1]
    if host["cgroups"]["version"]:
        with open(f"/proc/{info['pid']}/cgroup") as f:
            groups = f.read()
        check("/vireo/life" in groups or "/vm-life" in groups, f"VM not in its cgroup: {groups}")
        limits = {}
        for path in info["cgroups"]:
            for name in ("cpu.cfs_quota_us", "cpu.max", "memory.limit_in_bytes", "memory.max"):
                if os.path.exists(os.path.join(path, name)):
                    with open(os.path.join(path, name)) as f:
                        limits[name] = f.read().split()
        quota = limits.get("cpu.cfs_quota_us", limits.get("cpu.max", ["?"]))[0]
        memory = limits.get("memory.limit_in_bytes", limits.get("memory.max", ["?"]))[0]
        check(quota == "50000", f"CPU quota {quota}, expected the definition's 50000")
        check(memory == str((32 << 20) + (256 << 20)), f"memory limit {memory}")
        print(f"  cgroup v{host['cgroups']['version']}: cpu quota {quota}, memory limit {memory}")
    else:
        print(f"  SKIP cgroup checks: {host['cgroups'].get('reason')}")
    wait_for(lambda: len(d.counts("life")) >= 3, "the guest's counter on the console")
    # vcpuinfo finds both vCPU threads; vcpupin moves one (checked with the kernel's view).
    vcpus = d.cli_json("vcpuinfo", "life")["vcpus"]
    check([v["vcpu"] for v in vcpus] == [0, 1], f"vcpuinfo: {vcpus}")
    d.cli("vcpupin", "life", "1", "0")
    check(os.sched_getaffinity(vcpus[1]["tid"]) == {0}, "vcpupin did not move vCPU 1's thread")
    check(d.cli_json("vcpuinfo", "life")["vcpus"][1]["affinity"] == [0], "vcpuinfo after vcpupin")
    check(re.search(r"^CPU Affinity:\s+y", d.cli("vcpuinfo", "life").stdout, re.M), "vcpuinfo table")
    r = d.cli("vcpupin", "life", "5", "0", expect=1)
    check("vcpu 5: the domain has 2 vCPUs (0-1)" in r.stderr, r.stderr)
    d.cli("suspend", "life")
    check(d.cli_json("domstate", "life")["state"] == "paused", "domstate after suspend")
    before = d.counts("life")
    time.sleep(0.5)
    check(d.counts("life") == before, "the guest kept printing while suspended")
    d.cli("resume", "life")
    wait_for(lambda: len(d.counts("life")) > len(before) + 2, "counting after resume")
    seq = d.counts("life")
    check(seq == list(range(len(seq))), "the counter has a gap or a repeat across suspend/resume")
    stats = d.cli_json("domstats", "life")
    check(stats["counters"]["vcpus"][0]["exits"]["io"] > 0, f"domstats counters: {stats}")
    r = d.cli("reboot", "life")
    check(r.stdout.startswith("Domain 'life' is being rebooted"), r.stdout)
    # The same process boots the guest again: its counter starts over on the same console.
    wait_for(lambda: d.counts("life").count(0) == 2, "the counter restarting after reboot")
    check(d.domains()["life"]["state"] == "running", "state after reboot")
    r = d.cli("shutdown", "life")
    check(r.stdout.startswith("Domain 'life' is being shutdown"), r.stdout)
    wait_for(lambda: d.domains()["life"]["state"] == "shutoff", "shut off after the power button")
    check(d.domains()["life"]["reason"] == "shutdown", f"reason: {d.domains()['life']}")
    check("power button" in d.console("life"), "the guest never saw the power button")
    d.cli("start", "life")
    r = d.cli("destroy", "life")
    check(r.stdout.startswith("Domain 'life' destroyed"), r.stdout)
    check(d.domains()["life"]["state"] == "shutoff" and d.domains()["life"]["reason"] == "destroyed",
          "destroy")
    events = [e for e in d.events(since) if e[0] == "life"]
    expected = [("life", "defined", "added"), ("life", "started", "booted"), ("life", "paused", "user"),
                ("life", "resumed", "unpaused"), ("life", "rebooted", "user"), ("life", "stopped", "shutdown"),
                ("life", "started", "booted"), ("life", "stopped", "destroyed")]
    check(events == expected, f"events: {events}")


def console(d, root):
    """`vireo console` attaches to the serial line through the daemon: it prints the guest's
    output (--history: from boot) and Ctrl-] detaches with status 0, leaving the VM running."""
    d.cli("define", write(root, "con.xml", xml_def("con")))
    d.cli("start", "con")
    wait_for(lambda: len(d.counts("con")) >= 5, "console output")
    proc = subprocess.Popen([VIREO, "console", "con", "--history", "--connect", d.sock], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    proc.stdin.write(b"\x1d")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=10)
    text = out.decode(errors="replace").replace("\r", "")
    check(proc.returncode == 0, f"console exit {proc.returncode}: {err}")
    check(text.startswith("Connected to domain 'con'\nEscape character is ^] (Ctrl + ])"), text[:200])
    check("count 0\n" in text and "count 5\n" in text, f"console output: {text[:300]}")
    check(d.domains()["con"]["state"] == "running", "detaching stopped the VM")
    d.cli("destroy", "con")
    r = d.cli("console", "con", expect=1)
    check("is not running" in r.stderr, r.stderr)


def crash(d, root):
    """A VM process killed from outside is reported crashed with its signal; a guest that
    exits by itself with a failure status is crashed with that status; neither is
    restarted, and both are events."""
    since = d.api("GET", "/events")[1]["last"]
    d.cli("define", write(root, "k.json", json_def("k")))
    d.cli("define", write(root, "h.xml", xml_def("h", guest="hello")))
    d.cli("start", "k")
    os.kill(vm_pid(d, "k"), signal.SIGKILL)
    wait_for(lambda: d.domains()["k"]["state"] == "crashed", "crashed after SIGKILL")
    check(d.domains()["k"]["reason"] == "killed by signal 9", f"reason: {d.domains()['k']}")
    r = d.cli("start", "h", expect=None)  # may end before or after start answers
    wait_for(lambda: d.domains()["h"]["state"] == "crashed", "hello's own exit")
    check(d.domains()["h"]["reason"] == "exit status 85", f"reason: {d.domains()['h']} {r.stderr}")
    check("hello from vireo guest" in d.console("h"), "hello's output")
    time.sleep(0.3)
    check(d.domains()["k"]["state"] == "crashed", "a crashed VM was restarted")
    events = [e for e in d.events(since) if e[1] == "crashed"]
    check(("k", "crashed", "killed by signal 9") in events and ("h", "crashed", "exit status 85") in events,
          f"crash events: {events}")
    info = d.cli("dominfo", "k").stdout
    check(re.search(r"^State:\s+crashed$", info, re.M) and "killed by signal 9" in info, info)


def restart(d, root):
    """The daemon restarted while VMs run re-attaches to the live ones (still controllable,
    same pid, output continuing), marks one killed while it was away crashed with its exit
    status (recorded by the VM's monitor), and starts autostart domains."""
    for name in ("r1", "r2"):
        d.cli("define", write(root, name + ".json", json_def(name)))
        d.cli("start", name)
    d.cli("define", write(root, "auto.json", json_def("auto")))
    d.cli("autostart", "auto")
    p1, p2 = vm_pid(d, "r1"), vm_pid(d, "r2")
    d.stop()  # SIGTERM: the daemon ends, its VMs do not
    check(os.path.exists(f"/proc/{p1}") and os.path.exists(f"/proc/{p2}"), "VMs ended with the daemon")
    os.kill(p2, signal.SIGKILL)
    time.sleep(0.2)
    d.start()
    doms = d.domains()
    check(doms["r1"]["state"] == "running" and vm_pid(d, "r1") == p1, f"r1 not re-attached: {doms['r1']}")
    check(doms["r2"]["state"] == "crashed" and doms["r2"]["reason"] == "killed by signal 9",
          f"r2 after the restart: {doms['r2']}")
    check(doms["auto"]["state"] == "running", f"autostart: {doms['auto']}")
    n = len(d.counts("r1"))
    d.cli("suspend", "r1")
    d.cli("resume", "r1")
    wait_for(lambda: len(d.counts("r1")) > n + 2, "r1 counting after the restart")
    d.cli("shutdown", "r1")  # the re-attached VM's end is still seen
    wait_for(lambda: d.domains()["r1"]["state"] == "shutoff", "r1 shut off after the restart")
    d.cli("destroy", "auto")
    d.cli("autostart", "--disable", "auto")


def twenty_vms(d, root):
    """20 VMs defined and started at once are all reported running with distinct ids and
    pids, each with its own console output; destroyed at once, all are shut off."""
    names = [f"c{i:02d}" for i in range(20)]
    # 10% of a CPU each, so 20 spinning guests leave the host usable.
    for n in names:
        d.api("POST", "/domains", json.dumps({"definition": json_def(n, limits={"cpu_quota_us": 10000})}))
    t0 = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda n: d.cli("start", n, expect=None), names))
    for n, r in zip(names, results):
        check(r.returncode == 0, f"start {n}: {r.stderr}")
    started = time.monotonic() - t0
    listed = {x["name"]: x for x in d.cli_json("list")["domains"]}
    check(set(names) <= set(listed), f"list shows {sorted(listed)}")
    check(all(listed[n]["state"] == "running" for n in names), "not all running")
    check(len({listed[n]["id"] for n in names}) == 20, "ids are not distinct")
    check(len({vm_pid(d, n) for n in names}) == 20, "pids are not distinct")
    wait_for(lambda: all(d.counts(n) for n in names), "every VM's console output", timeout=30)
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda n: d.cli("destroy", n, expect=None), names))
    for n, r in zip(names, results):
        check(r.returncode == 0, f"destroy {n}: {r.stderr}")
    doms = d.domains()
    check(all(doms[n]["state"] == "shutoff" for n in names), "not all shut off")
    print(f"  20 VMs: started concurrently in {started:.2f}s")
    for n in names:
        d.cli("undefine", n)


def bad_inputs(d, root):
    """Malformed XML, an unknown unit, a missing disk file, memory below the minimum, a
    duplicate uuid, an unknown domain, start twice, undefine running: each is exit 1 with a
    message naming the problem, and the set of domains and their states do not change."""
    d.cli("define", write(root, "b.json", json_def("b")))
    d.cli("start", "b")
    before = d.domains()

    def refused(args, *messages):
        r = d.cli(*args, expect=1)
        for m in messages:
            check(m in r.stderr, f"vireo {' '.join(args)}: {m!r} not in {r.stderr!r}")
        check(d.domains() == before, f"vireo {' '.join(args)} changed the domains")

    refused(["define", write(root, "bad1.xml", "<domain type='kvm'><name>z</name><memory>")],
            "error: Failed to define domain from", "malformed XML at offset")
    refused(["define", write(root, "bad2.xml", xml_def("z").replace("unit='KiB'>32768</memory>",
                                                                     "unit='parsecs'>1</memory>"))],
            "memory: unknown unit 'parsecs'")
    refused(["define", write(root, "bad3.xml", xml_def("z", extra="<disk type='file' device='disk'>"
                                                       "<source file='/nonexistent/z.qcow2'/>"
                                                       "<target dev='vda' bus='virtio'/></disk>"))],
            "devices/disk source '/nonexistent/z.qcow2': No such file or directory")
    refused(["define", write(root, "bad4.json", json_def("z", memory="8M"))],
            "memory: 8192 KiB is below Vireo's minimum of 16 MiB")
    uuid = d.cli_json("dominfo", "b")["uuid"]
    refused(["define", write(root, "bad5.json", json_def("z", uuid=uuid))], f"uuid {uuid} is already used by domain 'b'")
    refused(["define", os.path.join(root, "missing.xml")], "Failed to open file")
    for cmd in ("start", "dominfo", "destroy", "undefine", "dumpxml", "suspend"):
        refused([cmd, "nope"], "error: failed to get domain 'nope'")
    refused(["start", "b"], "error: Failed to start domain 'b'",
            "error: Requested operation is not valid: domain is already running")
    refused(["undefine", "b"], "error: Failed to undefine domain 'b'", "is running; destroy or shut it down first")
    refused(["resume", "b"], "Requested operation is not valid: domain is not paused")
    status, body = d.api("GET", "/nothing/here")
    check(status == 404 and "error" in body, f"unknown path: {status} {body}")
    status, body = d.api("POST", "/domains", "not json", template="/domains")
    check(status == 400 and body["error"].startswith("request body"), f"bad body: {status} {body}")
    d.cli("destroy", "b")
    r = d.cli("destroy", "b", expect=1)
    check("domain is not running" in r.stderr, r.stderr)
    d.cli("undefine", "b")


def snapshots(d, root):
    """snapshot-create of a paused and of a running domain (which goes on running);
    snapshot-list shows both with their states; snapshot-revert ends the VM and resumes the
    snapshot: from the paused one the guest's counter continues exactly after the last line
    it printed before the snapshot (after resume), from the running one it continues too;
    undefine is refused while snapshots exist; snapshot-delete removes them."""
    d.cli("define", write(root, "snap.json", json_def("snap")))
    d.cli("start", "snap")
    wait_for(lambda: len(d.counts("snap")) >= 5, "counting")
    d.cli("suspend", "snap")
    # The suspend can land in the middle of a line: its start is in this VM's console, its
    # rest will be the first output of a VM reverted to s1. Only whole lines count.
    text = d.console("snap")
    before = text[:text.rfind("\n") + 1]
    partial = text[len(before):]
    last = whole_counts(before)[-1]
    r = d.cli("snapshot-create", "snap", "--name", "s1")
    check(r.stdout.startswith("Domain snapshot s1 created"), r.stdout)
    check(d.domains()["snap"]["state"] == "paused", "a paused domain stays paused")
    d.cli("resume", "snap")
    wait_for(lambda: d.counts("snap")[-1] > last + 5, "counting after s1")
    d.cli("snapshot-create", "snap", "--name", "s2")
    check(d.domains()["snap"]["state"] == "running", "a running domain goes on running")
    n = d.counts("snap")[-1]
    wait_for(lambda: d.counts("snap")[-1] > n + 2, "counting after s2")
    snaps = d.cli_json("snapshot-list", "snap")["snapshots"]
    check([(x["name"], x["state"]) for x in snaps] == [("s1", "paused"), ("s2", "running")], f"{snaps}")
    check(re.search(r"^ s1 .* paused$", d.cli("snapshot-list", "snap").stdout, re.M), "snapshot-list table")
    pid = vm_pid(d, "snap")
    r = d.cli("snapshot-revert", "snap", "s1")
    check(r.stdout.startswith("Domain 'snap' reverted to snapshot s1"), r.stdout)
    check(d.domains()["snap"]["state"] == "paused" and vm_pid(d, "snap") != pid, "revert to s1: a new, paused VM")
    time.sleep(0.2)
    check(d.counts("snap") == [], "a reverted paused VM printed")
    d.cli("resume", "snap")
    wait_for(lambda: len(d.counts("snap")) >= 3, "counting after the revert")
    after = partial + d.console("snap")
    seq = whole_counts(after[:after.rfind("\n") + 1])
    check(seq and seq[0] == last + 1 and seq == list(range(seq[0], seq[0] + len(seq))),
          f"after reverting to s1 (last line {last}) the counter went {seq[:5]}")
    d.cli("snapshot-revert", "snap", "s2")
    check(d.domains()["snap"]["state"] == "running", "revert to a running snapshot")
    wait_for(lambda: len(d.counts("snap")) >= 2, "counting after the revert to s2")
    check(last + 5 < d.counts("snap")[0] <= n + 1, f"after reverting to s2: {d.counts('snap')[:3]}")
    r = d.cli("snapshot-revert", "snap", "nope", expect=1)
    check("Domain snapshot not found: no snapshot 'nope'" in r.stderr, r.stderr)
    d.cli("destroy", "snap")
    r = d.cli("undefine", "snap", expect=1)
    check("has snapshots" in r.stderr, r.stderr)
    d.cli("snapshot-delete", "snap", "s1")
    d.cli("snapshot-delete", "snap", "s2")
    check(d.cli_json("snapshot-list", "snap")["snapshots"] == [], "snapshot-delete")
    d.cli("undefine", "snap")


def toml(d, root):
    """A TOML definition (Vireo's JSON keys) defines the same domain as its JSON twin; an
    unknown key is a warning (refused with --strict); dumpxml --toml writes it back."""
    kernel = os.path.join(GUESTS, "api_counter.elf")
    text = f'name = "t1"\nmemory = "32M"\nkernel = "{kernel}"\nballoon = true\ncolour = "red"\n[cpu]\ncores = 1\nsockets = 1\nthreads = 1\n'
    path = write(root, "t1.toml", text)
    r = d.cli("define", "--strict", path, expect=1)
    check("unsupported key colour (refused with --strict)" in r.stderr, r.stderr)
    r = d.cli("define", path)
    check(r.stdout.startswith(f"Domain 't1' defined from {path}"), r.stdout)
    check("warning: unsupported key colour (ignored)" in r.stderr, r.stderr)
    xml = d.cli("dumpxml", "t1").stdout
    check("<memballoon model=\"virtio\"" in xml and "<memory unit=\"KiB\">32768</memory>" in xml, xml)
    dumped = d.cli("dumpxml", "--toml", "t1").stdout
    check(re.search(r"^name = [\"']t1[\"']$", dumped, re.M) and "balloon = true" in dumped, dumped)
    again = write(root, "t1-dumped.toml", dumped)
    r = d.cli("define", "--strict", again)
    check(r.stderr == "" and d.cli("dumpxml", "t1").stdout == xml, f"dumpxml --toml round trip: {r.stderr}")
    r = d.cli("define", write(root, "bad.toml", 'name = "t2"\nkernel = \n'), expect=1)
    check("malformed TOML at line 2" in r.stderr, r.stderr)
    d.cli("undefine", "t1")


def vm_balloon(d, name):
    """The VM's own GET /vm/balloon, through the socket the daemon reports."""
    conn = UnixConnection(d.cli_json("dominfo", name)["api_socket"])
    try:
        conn.request("GET", "/api/v1/vm/balloon")
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def setmem(d, root):
    """setmem SIZE (KiB, or with a unit) moves the running VM's balloon target to memory -
    SIZE (seen as the device's num_pages) and dominfo's used memory; --config changes the
    definition's currentMemory, which the next start applies; sizes above the maximum, bad
    units and domains without a balloon are refused and change nothing."""
    d.cli("define", write(root, "bal.json", json_def("bal", balloon=True)))
    d.cli("define", write(root, "nob.json", json_def("nob")))
    d.cli("start", "bal")
    st, b = vm_balloon(d, "bal")
    check(st == 200 and b["num_pages"] == 0 and b["memory_bytes"] == 32 << 20, f"balloon at start: {b}")
    r = d.cli("setmem", "bal", "16M")
    check(r.stdout == "" and r.stderr == "", f"setmem prints nothing: {r.stdout!r} {r.stderr!r}")
    check(vm_balloon(d, "bal")[1]["num_pages"] == (16 << 20) // 4096, f"16M: {vm_balloon(d, 'bal')}")
    check(re.search(r"^Used memory:\s+16384 KiB", d.cli("dominfo", "bal").stdout, re.M), "dominfo used memory")
    d.cli("setmem", "bal", "24576")  # KiB, as virsh
    check(vm_balloon(d, "bal")[1]["num_pages"] == (8 << 20) // 4096, f"24576 KiB: {vm_balloon(d, 'bal')}")
    for size, phrase in (("64M", "cannot set memory to 65536 KiB"), ("12parsecs", "is malformed"),
                         ("0", "cannot set memory to 0 KiB")):
        r = d.cli("setmem", "bal", size, expect=1)
        check(phrase in r.stderr, f"setmem {size}: {r.stderr}")
    check(vm_balloon(d, "bal")[1]["num_pages"] == 2048, "a refused setmem changed the balloon")
    st, err = d.api("PUT", "/domains/bal/memory", body=json.dumps({"size_bytes": "16M"}))
    check(st == 400 and "size_bytes" in err["error"], f"bad body: {st} {err}")
    # --config: the definition only; the running VM keeps its target until the next start.
    d.cli("setmem", "bal", "20M", "--config")
    check("<currentMemory unit=\"KiB\">20480</currentMemory>" in d.cli("dumpxml", "bal").stdout, "--config")
    check(vm_balloon(d, "bal")[1]["num_pages"] == 2048, "--config changed the running VM")
    d.cli("destroy", "bal")
    d.cli("start", "bal")
    check(vm_balloon(d, "bal")[1]["num_pages"] == (12 << 20) // 4096, f"currentMemory at start: {vm_balloon(d, 'bal')}")
    wait_for(lambda: len(d.counts("bal")) >= 3, "the ballooned guest counting")
    d.cli("destroy", "bal")
    d.cli("setmem", "bal", "32M")  # shut off: the definition (virsh's --current)
    check("currentMemory unit=\"KiB\">32768<" in d.cli("dumpxml", "bal").stdout, "setmem on a shut off domain")
    r = d.cli("setmem", "bal", "16M", "--live", expect=1)
    check("domain is not running" in r.stderr, r.stderr)
    d.cli("start", "nob")
    r = d.cli("setmem", "nob", "16M", expect=1)
    check("has no memory balloon" in r.stderr, r.stderr)
    d.cli("destroy", "nob")
    for name in ("bal", "nob"):
        d.cli("undefine", name)


def serial_lines(text):
    """The complete "count N" lines (a pause can fall mid-line: its two halves are in the
    source's and the destination's console, so they are joined before counting)."""
    return whole_counts(text[:text.rfind("\n") + 1])


def migrate(d, root):
    """Live migration between two daemons on this host: the destination's `start --incoming`
    waits (paused, reason incoming migration), `migrate --live` on the source shows progress
    and returns once the source is shut off (reason migrated) and the destination runs the
    guest, whose counter goes on with nothing lost or repeated; a migration to a port where
    nothing listens fails with the reason and the domain runs on; events on both sides."""
    b_root = os.path.join(root, "b")
    os.makedirs(b_root, exist_ok=True)
    b = Daemon(b_root)
    b.start()
    try:
        since_a = d.api("GET", "/events")[1]["last"]
        since_b = b.api("GET", "/events")[1]["last"]
        definition = write(root, "mig.json", json_def("mig", uuid="5b0c7a4e-1f7c-4c55-9d2e-2a3c9f00e001"))
        d.cli("define", definition)
        b.cli("define", definition)
        d.cli("start", "mig")
        wait_for(lambda: len(d.counts("mig")) >= 5, "the source counting")
        r = d.cli("migrate", "mig", "tcp:127.0.0.1:1", expect=1)
        check("add --live" in r.stderr, r.stderr)
        r = b.cli("start", "--incoming", "tcp:127.0.0.1:0", "mig")
        m = re.search(r"waiting for an incoming migration on (tcp:127\.0\.0\.1:\d+)", r.stdout)
        check(m, f"start --incoming: {r.stdout}")
        uri = m.group(1)
        check(b.cli("domstate", "--reason", "mig").stdout.startswith("paused (incoming migration)"),
              "the destination waits paused")
        r = b.cli("migrate", "--live", "mig", "tcp:127.0.0.1:1", expect=1)
        check("waiting for an incoming migration" in r.stderr, f"migrate from the waiting side: {r.stderr}")
        r = d.cli("migrate", "--live", "mig", uri)
        check(r.stdout.startswith(f"Domain 'mig' migrated to {uri}"), r.stdout)
        check(re.search(r"^Migration: .*round \d+, \d+ pages remaining", r.stderr, re.M)
              and "Migration: completed" in r.stderr, f"progress: {r.stderr}")
        check(d.cli("domstate", "--reason", "mig").stdout.startswith("shut off (migrated)"), "the source after")
        st, status = d.api("GET", "/domains/mig/migrate")
        check(st == 200 and status["state"] == "completed" and status["domain"]["reason"] == "migrated", f"{status}")
        wait_for(lambda: b.domains()["mig"]["state"] == "running", "the destination running")
        check(b.domains()["mig"]["reason"] == "migrated", f"destination: {b.domains()['mig']}")
        # The guest goes on: the source's console then the destination's is one count.
        with open(os.path.join(d.state, "log", "mig.console"), errors="replace") as f:
            src = f.read()
        wait_for(lambda: len(b.counts("mig")) >= 5, "the destination counting")
        seq = serial_lines(src + b.console("mig"))
        src_last = whole_counts(src)[-1]
        check(seq == list(range(len(seq))) and seq[-1] > src_last + 3,
              f"counter across the migration (source's last {src_last}): {seq[max(0, src_last - 3):src_last + 5]}")
        # Failure: nothing listens; the domain runs on where it was, and says why.
        r = b.cli("migrate", "--live", "mig", "tcp:127.0.0.1:1", expect=1)
        check("error: Failed to migrate domain 'mig'" in r.stderr and "cannot connect" in r.stderr, r.stderr)
        check(b.domains()["mig"]["state"] == "running", "a failed migration stopped the domain")
        n = b.counts("mig")[-1]
        wait_for(lambda: b.counts("mig")[-1] >= n + 3, "counting after the failed migration")
        st, status = b.api("GET", "/domains/mig/migrate")
        check(st == 200 and status["state"] == "failed" and "cannot connect" in status["error"], f"{status}")
        st, err = b.api("PUT", "/domains/mig/migrate", body="{}")
        check(st == 400, f"migrate without uri: {st} {err}")
        r = d.cli("migrate", "--live", "mig", uri, expect=1)
        check("domain is not running" in r.stderr, f"migrate a shut off domain: {r.stderr}")
        ev_a = [e for e in d.events(since_a) if e[0] == "mig"]
        ev_b = [e for e in b.events(since_b) if e[0] == "mig"]
        check(ev_a == [("mig", "defined", "added"), ("mig", "started", "booted"), ("mig", "stopped", "migrated")],
              f"source events: {ev_a}")
        check(ev_b == [("mig", "defined", "added"), ("mig", "started", "incoming migration"),
                       ("mig", "resumed", "migrated")], f"destination events: {ev_b}")
        # An incoming start whose migration never comes: destroy it (a waiting domain is one).
        b.cli("destroy", "mig")
        b.cli("start", "--incoming", "tcp:127.0.0.1:0", "mig")
        b.cli("destroy", "mig")
        check(b.domains()["mig"]["reason"] == "destroyed", f"{b.domains()['mig']}")
        d.cli("undefine", "mig")
        b.cli("undefine", "mig")
    finally:
        d.used |= b.used
        try:
            for name, dom in b.domains().items():
                if dom["state"] in ("running", "paused"):
                    b.cli("destroy", name, expect=None)
        except Exception:
            pass
        b.stop(signal.SIGTERM)


def remote(d, root):
    """--listen serves the API over HTTPS with a bearer token: the CLI with the right token
    lists the same domains as over the Unix socket; no token or a wrong one is refused (401)."""
    if shutil.which("openssl") is None:
        print("  SKIP remote: no openssl to make a certificate")
        return
    cert, key, token = (os.path.join(root, n) for n in ("cert.pem", "key.pem", "token"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    write(root, "token", "s3cret-token\n")
    d.cli("define", write(root, "rem.json", json_def("rem")))
    d.stop()
    port = 20000 + os.getpid() % 20000
    remote_args = ["--listen", f"127.0.0.1:{port}", "--tls-cert", cert, "--tls-key", key, "--token-file", token]
    d.start(remote_args)
    url = f"https://127.0.0.1:{port}"

    def cli(token_value, *args):
        env = dict(os.environ, VIREO_TOKEN=token_value, VIREO_CA_CERT=cert)
        return subprocess.run([VIREO, *args, "--connect", url], capture_output=True, text=True, env=env,
                              timeout=30)

    r = cli("s3cret-token", "list", "--all", "--json")
    check(r.returncode == 0, f"remote list: {r.stderr}")
    check("rem" in {x["name"] for x in json.loads(r.stdout)["domains"]}, r.stdout)
    r = cli("s3cret-token", "dominfo", "rem")
    check(r.returncode == 0 and "shut off" in r.stdout, r.stdout + r.stderr)
    for bad in ("", "wrong"):
        r = cli(bad, "list")
        check(r.returncode == 1 and "missing or wrong token" in r.stderr, f"token {bad!r}: {r.stderr}")
    d.stop()
    d.start()
    d.cli("undefine", "rem")


# A minimal DHCP client (RFC 2131): DISCOVER on the interface in argv[1], print the OFFER.
# It sends from 0.0.0.0 as a real client does, so it speaks Ethernet through an AF_PACKET
# socket (a UDP socket would take the namespace's own address as its source).
DHCP_DISCOVER = r"""
import socket, struct, sys, time
ifname = sys.argv[1]
mac = bytes.fromhex(open(f"/sys/class/net/{ifname}/address").read().strip().replace(":", ""))
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    return ~(t + (t >> 16)) & 0xffff
xid = 0x56495245
dhcp = struct.pack("!BBBBIHH4s4s4s4s16s64s128sI", 1, 1, 6, 0, xid, 0, 0x8000, bytes(4), bytes(4), bytes(4),
                   bytes(4), mac.ljust(16, b"\0"), bytes(64), bytes(128), 0x63825363) + bytes([53, 1, 1, 255])
dhcp += bytes(300 - len(dhcp))
udp = struct.pack("!HHHH", 68, 67, 8 + len(dhcp), 0) + dhcp
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), b"\xff" * 4)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
frame = b"\xff" * 6 + mac + b"\x08\x00" + ip + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((ifname, 0))
s.settimeout(0.5)
end = time.time() + 20
while time.time() < end:
    s.send(frame)
    stop = time.time() + 1
    while time.time() < stop:
        try:
            data = s.recv(2048)
        except socket.timeout:
            break
        ihl = (data[14] & 15) * 4
        if data[23] != 17 or struct.unpack("!H", data[14 + ihl + 2:14 + ihl + 4])[0] != 68:
            continue
        bootp = data[14 + ihl + 8:]
        if bootp[0] == 2 and struct.unpack("!I", bootp[4:8])[0] == xid:
            print("offered " + socket.inet_ntoa(bootp[16:20]))
            sys.exit(0)
sys.exit(1)
"""


def network(d, root):
    """Managed networks in a private network namespace: net-start of a NAT network creates
    its bridge with the host address, an nftables masquerade table and a dnsmasq that offers
    a DHCP address in its range; a VM on it gets a tap joined to the bridge, through which the virtio_net
    guest (static 10.0.2.15) ARPs for and pings the bridge's address; bridged mode joins a
    VM to an existing host bridge the same way; the taps go when the VMs end; starting a VM
    on an inactive network is refused; a VM with an interface snapshots and reverts onto a new
    tap and carries on; net-destroy removes bridge, table and dnsmasq; net-autostart brings the
    network back when the daemon restarts."""
    if not os.path.exists("/dev/net/tun") or not shutil.which("nft") or not shutil.which("dnsmasq"):
        print("  SKIP network: needs /dev/net/tun, nft (nftables) and dnsmasq (dnsmasq-base)")
        return
    ns = f"vireo-mgmt-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        print("  SKIP network: cannot create a network namespace (no CAP_NET_ADMIN?)")
        return

    def in_ns(*cmd):
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True).stdout

    try:
        d.stop()
        d.start(prefix=["ip", "netns", "exec", ns])
        nat = write(root, "nat.xml", """<network>
  <name>testnat</name>
  <forward mode='nat'/>
  <bridge name='vbr0'/>
  <ip address='10.0.2.1' netmask='255.255.255.0'>
    <dhcp><range start='10.0.2.100' end='10.0.2.200'/></dhcp>
  </ip>
</network>""")
        r = d.cli("net-define", nat)
        check(r.stdout.startswith(f"Network testnat defined from {nat}"), r.stdout)
        vm_xml = xml_def("netvm", guest="virtio_net", extra="<interface type='network'><source network='testnat'/>"
                         "<model type='virtio'/></interface>").replace(
            "<cmdline>console=ttyS0</cmdline>", "<cmdline>vnet.ip=10.0.2.15 vnet.host=10.0.2.1</cmdline>")
        d.cli("define", write(root, "netvm.xml", vm_xml))
        r = d.cli("start", "netvm", expect=1)
        check("network 'testnat' is not active; net-start it first" in r.stderr, r.stderr)
        check(re.search(r"testnat\s+inactive", d.cli("net-list", "--all").stdout), "net-list --all")
        d.cli("net-start", "testnat")
        check(re.search(r"testnat\s+active\s+nat\s+vbr0", d.cli("net-list").stdout), "net-list")
        check("inet 10.0.2.1/24" in in_ns("ip", "-4", "addr", "show", "vbr0"), "bridge address")
        table = in_ns("nft", "list", "table", "ip", "vireo-testnat")
        check("ip saddr 10.0.2.0/24 ip daddr != 10.0.2.0/24 masquerade" in table, f"nft table: {table}")
        check(in_ns("cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1", "ip_forward")
        info = d.cli_json("net-dumpxml", "testnat")
        pid = info.get("dnsmasq_pid", 0)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        check(b"--interface=vbr0" in argv and b"--dhcp-range=10.0.2.100,10.0.2.200" in argv, f"dnsmasq: {argv}")
        check(":0043 " in in_ns("cat", "/proc/net/udp"), "nothing listens on the DHCP port (67) in the namespace")
        # net-autostart: a restarted daemon brings the network back (here after net-destroy).
        d.cli("net-autostart", "testnat")
        d.cli("net-destroy", "testnat")
        check("vbr0" not in in_ns("ip", "-o", "link"), "net-destroy left the bridge")
        d.stop()
        d.start(prefix=["ip", "netns", "exec", ns])
        check(re.search(r"testnat\s+active", d.cli("net-list").stdout), "the autostart network after a restart")
        d.cli("net-autostart", "--disable", "testnat")
        pid = d.cli_json("net-dumpxml", "testnat").get("dnsmasq_pid", 0)
        # DHCP from the network's dnsmasq: a client on a veth joined to the bridge is offered
        # an address in the range (the test guests have no DHCP client of their own).
        for cmd in (["link", "add", "dhcpc", "type", "veth", "peer", "name", "dhcpb"],
                    ["link", "set", "dhcpb", "master", "vbr0", "up"], ["link", "set", "dhcpc", "up"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        offer = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", DHCP_DISCOVER, "dhcpc"],
                               capture_output=True, text=True, timeout=30)
        check(offer.returncode == 0 and re.match(r"offered 10\.0\.2\.(\d+)", offer.stdout),
              f"no DHCP offer: {offer.stdout}{offer.stderr}")
        check(100 <= int(offer.stdout.split(".")[-1]) <= 200, f"offer outside the range: {offer.stdout}")
        print(f"  DHCP: {offer.stdout.strip()}")
        d.cli("start", "netvm", expect=None)
        wait_for(lambda: d.domains()["netvm"]["state"] != "running", "the virtio_net guest to finish", timeout=30)
        out = d.console("netvm")
        check("icmp echo reply from 10.0.2.1" in out and "PASS virtio_net" in out, f"guest on the NAT network: {out}")
        check(d.domains()["netvm"]["reason"] == "exit status 1", "virtio_net passes with debug-exit 0 (status 1)")
        check("vt" not in in_ns("ip", "-o", "link", "show", "master", "vbr0"), "the VM's tap outlived it")
        r = d.cli("net-undefine", "testnat", expect=1)
        check("is active; destroy it first" in r.stderr, r.stderr)
        # Bridged mode: an existing host bridge.
        subprocess.run(["ip", "-n", ns, "link", "add", "hostbr", "type", "bridge"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", "10.0.3.1/24", "dev", "hostbr"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "hostbr", "up"], check=True)
        br_xml = xml_def("brvm", guest="virtio_net", extra="<interface type='bridge'><source bridge='hostbr'/>"
                         "<mac address='52:54:00:00:00:42'/><model type='virtio'/></interface>").replace(
            "<cmdline>console=ttyS0</cmdline>", "<cmdline>vnet.ip=10.0.3.15 vnet.host=10.0.3.1</cmdline>")
        d.cli("define", write(root, "brvm.xml", br_xml))
        d.cli("start", "brvm", expect=None)
        wait_for(lambda: d.domains()["brvm"]["state"] != "running", "the bridged guest to finish", timeout=30)
        out = d.console("brvm")
        check("mac: 52:54:00:00:00:42" in out and "icmp echo reply from 10.0.3.1" in out, f"bridged guest: {out}")
        # A domain with an interface snapshots and reverts: the reverted VM is restored onto a
        # new tap on the bridge (--restore ... --net tap=) and its guest (snapshot_devices, which
        # ARPs for 10.0.2.1 every round) goes on from the snapshot without re-initialising.
        d.cli("define", write(root, "netsnap.xml", xml_def(
            "netsnap", guest="snapshot_devices",
            extra="<interface type='network'><source network='testnat'/><model type='virtio'/></interface>")))
        d.cli("start", "netsnap")
        net_rounds = lambda: [int(n) for n in re.findall(r"^round (\d+) net ok", d.console("netsnap"), re.M)]
        wait_for(lambda: len(net_rounds()) >= 3, "netsnap's rounds", timeout=30)
        d.cli("snapshot-create", "netsnap", "--name", "s1")
        d.cli("snapshot-revert", "netsnap", "s1")
        wait_for(lambda: len(net_rounds()) >= 3, "netsnap's rounds after the revert", timeout=30)
        seq, out = net_rounds(), d.console("netsnap")
        check(seq[0] >= 4 and seq == list(range(seq[0], seq[0] + len(seq))) and "ready:" not in out,
              f"netsnap after the revert: {out[-300:]}")
        d.cli("destroy", "netsnap")
        d.cli("snapshot-delete", "netsnap", "s1")
        d.cli("net-destroy", "testnat")
        check("vbr0" not in in_ns("ip", "-o", "link"), "net-destroy left the bridge")
        check(in_ns("nft", "list", "tables").find("vireo-testnat") < 0, "net-destroy left the nft table")
        wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
                 "dnsmasq to end")
        d.cli("net-undefine", "testnat")
        for name in ("netvm", "brvm", "netsnap"):
            d.cli("undefine", name)
    finally:
        d.cli("net-destroy", "testnat", expect=None)  # dnsmasq would keep the namespace alive
        d.stop()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        d.start()


def api_doc(d, root):
    """Every daemon API call this test made, with its status, is in docs/daemon-api.yaml."""
    try:
        import yaml
    except ImportError:
        print("  SKIP api_doc: PyYAML (python3-yaml) is not installed")
        return
    with open(API_YAML) as f:
        spec = yaml.safe_load(f)
    for method, path, status in sorted(d.used):
        template = re.sub(r"^/domains/[^/]+", "/domains/{name}", path)
        if path == "/nothing/here":
            continue
        op = spec["paths"].get(template, {}).get(method.lower())
        check(op is not None, f"{method} {template} is not in {API_YAML}")
        check(str(status) in op["responses"], f"{method} {template}: status {status} not documented")


SCENARIOS = [definitions, toml, lifecycle, console, crash, restart, twenty_vms, bad_inputs, snapshots, setmem, migrate,
             remote, network,
             api_doc]


def main():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable")
        return 77
    root = tempfile.mkdtemp(prefix="vireo-mgmt-")
    d = Daemon(root)
    failed = None
    try:
        d.start()
        for scenario in SCENARIOS:
            if SELECTED and scenario.__name__ not in SELECTED:
                continue
            t0 = time.monotonic()
            scenario(d, root)
            print(f"PASS {scenario.__name__} ({time.monotonic() - t0:.1f}s): {scenario.__doc__.split(chr(10))[0]}")
    except Failure as e:
        failed = e
    finally:
        # End every VM this test started, then the daemon.
        try:
            for name, dom in d.domains().items():
                if dom["state"] in ("running", "paused"):
                    d.cli("destroy", name, expect=None)
        except Exception:
            pass
        d.stop(signal.SIGTERM)
    if failed:
        print(f"FAIL: {failed}\n--- daemon log ---\n{d.log_text()[-3000:]}")
        return 1
    shutil.rmtree(root, ignore_errors=True)
    print(f"mgmt_test: all passed in {time.monotonic() - STARTED:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
