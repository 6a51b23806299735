#!/usr/bin/env bash
# Snapshot create time and size, and restore time, for Vireo against QEMU doing the same
# (QMP `migrate` to a file, `-incoming` from it), on the same guest in one run.
#
#   bench/snapshot.sh [BUILD_DIR]     (default: build; bench/run.sh calls it)
#
# Environment: SNAP_RUNS (runs per VMM, default 5; medians are reported), QEMU (the binary).
# The guest is guests/snapshot_counter.elf (1 vCPU, 256 MiB; it dirties 64 pages of a 16 MiB
# buffer and prints a line every ~20 ms). Per run and VMM:
#   create   the VM counts, is paused, and a full snapshot is written: the time from the
#            request to the answer (Vireo: PUT /vm/snapshot; QEMU: `stop` then `migrate
#            "exec:cat > FILE"` until query-migrate says completed), and the disk space the
#            snapshot takes (du) and its apparent size;
#   restore  a new process restores it and runs on: the time from spawning the process to the
#            guest's first new serial line (Vireo: `run --restore DIR`; QEMU: `-incoming
#            "exec:cat FILE"`, then `cont` over QMP as soon as the incoming migration is
#            done), and for Vireo also its --stats "time to first guest instruction".
# Every sample goes to BUILD_DIR/bench/snapshot-latest.json.
# Ratios are vireo/qemu: below 1, Vireo is faster or smaller.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$repo/$build"
runs=${SNAP_RUNS:-5}
qemu_bin=${QEMU:-qemu-system-x86_64}
vireo="$build/vireo"
guest="$build/guests/snapshot_counter.elf"

die() {
  echo "snapshot bench: $*" >&2
  exit 1
}
for f in "$vireo" "$guest"; do [[ -e "$f" ]] || die "missing $f: build first"; done
command -v "$qemu_bin" >/dev/null || die "$qemu_bin not found (scripts/install-deps.sh --bench)"
command -v python3 >/dev/null || die "python3 not found"

work=$(mktemp -d /var/tmp/vireo-snapbench.XXXXXX)
trap 'rm -rf "$work"' EXIT

mkdir -p "$build/bench"
python3 - "$vireo" "$qemu_bin" "$guest" "$work" "$runs" "$build/bench/snapshot-latest.json" <<'PY'
import http.client, json, os, re, socket, statistics, subprocess, sys, time

vireo, qemu, guest, work, runs, samples_path = sys.argv[1:5] + [int(sys.argv[5]), sys.argv[6]]
COUNT = re.compile(rb"^count (\d+) ", re.M)

def counts(path):
    try:
        with open(path, "rb") as f:
            return [int(m) for m in COUNT.findall(f.read())]
    except FileNotFoundError:
        return []

children = []  # every process started, killed at the end even when a step fails

def spawn(args, **kw):
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **kw)
    children.append(p)
    return p

def wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.001)
    raise SystemExit(f"snapshot bench: timed out waiting for {what}")

def du(path):
    out = subprocess.run(["du", "-sk", path], capture_output=True, text=True).stdout
    return int(out.split()[0]) * 1024

def apparent(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))

class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path_ = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path_)

def api(sock, path, body=""):
    c = Unix(sock)
    c.request("PUT", "/api/v1" + path, body=body)
    r = c.getresponse()
    data = json.loads(r.read())
    c.close()
    if r.status != 200:
        raise SystemExit(f"snapshot bench: {path}: {r.status} {data}")
    return data

class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        wait(lambda: os.path.exists(path), 20, "the QMP socket")
        self.s.connect(path)
        self.f = self.s.makefile("rwb")
        self.f.readline()  # greeting
        self.cmd("qmp_capabilities")
    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            reply = json.loads(self.f.readline())
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise SystemExit(f"snapshot bench: QMP {name}: {reply['error']}")

QEMU_COMMON = [qemu, "-M", "microvm", "-enable-kvm", "-m", "256M", "-smp", "1", "-nodefaults",
               "-no-user-config", "-display", "none"]

results = {"vireo": {"create_ms": [], "disk": [], "size": [], "restore_ms": [], "first_insn_ms": []},
           "qemu": {"create_ms": [], "disk": [], "size": [], "restore_ms": []}}

def vireo_run(i):
    d = os.path.join(work, f"v{i}")
    os.makedirs(d)
    serial, sock, snap = (os.path.join(d, n) for n in ("serial", "sock", "snap"))
    p = spawn([vireo, "run", "--kernel", guest, "--memory", "256M", "--serial", f"file:{serial}",
               "--api-socket", sock, "--no-reboot"], stderr=subprocess.DEVNULL)
    wait(lambda: len(counts(serial)) >= 3, 30, "vireo's guest to count")
    api(sock, "/vm/pause")
    t = time.monotonic()
    api(sock, "/vm/snapshot", json.dumps({"path": snap, "type": "full"}))
    results["vireo"]["create_ms"].append((time.monotonic() - t) * 1e3)
    api(sock, "/vm/stop")
    p.wait(timeout=10)
    results["vireo"]["disk"].append(du(snap))
    results["vireo"]["size"].append(apparent(snap))
    serial2 = os.path.join(d, "serial2")
    t = time.monotonic()
    p = spawn([vireo, "run", "--restore", snap, "--serial", f"file:{serial2}", "--api-socket",
               sock + "2", "--stats", "--no-reboot"], stderr=subprocess.PIPE)
    wait(lambda: counts(serial2), 30, "vireo's restored guest to count")
    results["vireo"]["restore_ms"].append((time.monotonic() - t) * 1e3)
    api(sock + "2", "/vm/stop")
    err = p.communicate(timeout=10)[1].decode()
    m = re.search(r"time to first guest instruction: ([0-9.]+) ms", err)
    if m:
        results["vireo"]["first_insn_ms"].append(float(m.group(1)))

def qemu_run(i):
    d = os.path.join(work, f"q{i}")
    os.makedirs(d)
    serial, qmp, snap = (os.path.join(d, n) for n in ("serial", "qmp", "snap"))
    args = QEMU_COMMON + ["-serial", f"file:{serial}", "-qmp", f"unix:{qmp},server=on,wait=off", "-kernel", guest]
    p = spawn(args, stderr=subprocess.DEVNULL)
    q = Qmp(qmp)
    wait(lambda: len(counts(serial)) >= 3, 60, "QEMU's guest to count")
    q.cmd("stop")
    t = time.monotonic()
    q.cmd("migrate", uri=f"exec:cat > {snap}")
    wait(lambda: q.cmd("query-migrate").get("status") in ("completed", "failed"), 60, "QEMU's migration")
    results["qemu"]["create_ms"].append((time.monotonic() - t) * 1e3)
    status = q.cmd("query-migrate").get("status")
    if status != "completed":
        raise SystemExit(f"snapshot bench: QEMU migration {status}")
    q.cmd("quit")
    p.wait(timeout=10)
    results["qemu"]["disk"].append(du(snap))
    results["qemu"]["size"].append(apparent(snap))
    serial2, qmp2 = os.path.join(d, "serial2"), os.path.join(d, "qmp2")
    args = QEMU_COMMON + ["-serial", f"file:{serial2}", "-qmp", f"unix:{qmp2},server=on,wait=off",
                          "-kernel", guest, "-incoming", f"exec:cat {snap}"]
    t = time.monotonic()
    p = spawn(args, stderr=subprocess.DEVNULL)
    q = Qmp(qmp2)
    wait(lambda: q.cmd("query-status")["status"] != "inmigrate", 60, "QEMU's incoming migration")
    q.cmd("cont")
    wait(lambda: counts(serial2), 30, "QEMU's restored guest to count")
    results["qemu"]["restore_ms"].append((time.monotonic() - t) * 1e3)
    q.cmd("quit")
    p.wait(timeout=10)

try:
    for i in range(runs):  # alternate, so both see the same host conditions
        vireo_run(i)
        qemu_run(i)
finally:
    for p in children:
        if p.poll() is None:
            p.kill()
            p.wait()

med = lambda xs: statistics.median(xs) if xs else float("nan")
v, q = results["vireo"], results["qemu"]
rows = [("create (pause -> snapshot written), ms", med(v["create_ms"]), med(q["create_ms"])),
        ("snapshot disk usage, KiB", med(v["disk"]) / 1024, med(q["disk"]) / 1024),
        ("snapshot apparent size, KiB", med(v["size"]) / 1024, med(q["size"]) / 1024),
        ("restore (spawn -> first guest line), ms", med(v["restore_ms"]), med(q["restore_ms"]))]
print(f"\nSnapshot/restore, snapshot_counter guest, 256 MiB, medians of {runs} runs (ratio vireo/qemu; below 1: Vireo faster/smaller)")
print(f"{'case':44} {'vireo':>10} {'qemu':>10} {'ratio':>7}")
for name, a, b in rows:
    print(f"{name:44} {a:10.1f} {b:10.1f} {a / b:7.2f}")
print(f"{'vireo --stats: main() -> first guest instruction, ms':56} {med(v['first_insn_ms']):10.1f}")
with open(samples_path, "w") as f:
    json.dump({"case": "snapshot", "runs": runs, "samples": results}, f)
PY
