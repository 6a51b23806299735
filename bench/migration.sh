#!/usr/bin/env bash
# Live migration total time and downtime, Vireo against QEMU doing the same (QMP `migrate` over
# TCP to an `-incoming` QEMU), on the same guest in one run, for 128 MiB and 1 GiB guests, idle
# and dirtying memory.
#
#   bench/migration.sh [BUILD_DIR]     (default: build; bench/run.sh calls it)
#
# Environment: MIG_RUNS (runs per VMM and case, default 3; medians are reported),
# MIG_DOWNTIME_MS (the downtime limit given to both, default 300), MIG_DIRTY_MIB_S (the dirtying
# guest's rate, MiB of pages per second, default 64), MIG_BUFFER_MIB (the buffer it cycles
# through, default 64), MIG_SIZES (default "128M 1G"), MIG_VMMS (default "vireo qemu"; one of
# them alone is for trying the script, the ratios are then nan), QEMU (the binary).
#
# The guest is guests/bench_migrate.elf, 1 vCPU, booted by its PVH entry by both VMMs (QEMU:
# -M microvm,rtc=on, KVM if QEMU can run the guest with it here, else TCG; the table says which). It
# prints a line every 20 ms; dirtying, it also writes one word into each of MIG_DIRTY_MIB_S *
# 256 pages per second (docs/performance.md, "Live migration"). Per case and run, alternating
# Vireo and QEMU: the source boots and prints 3 lines; the destination is started and waits
# (Vireo `run --incoming tcp:127.0.0.1:0`, QEMU `-incoming tcp:127.0.0.1:PORT`); then
#   Vireo  PUT /api/v1/vm/migrate {uri, max_downtime_ms, bandwidth_mbps: 0}, GET /vm/migrate
#          every 100 ms to catch a failure; total and downtime from the line the source prints
#          ("migrated to ...: ... downtime D ms, total T ms") before it exits;
#   QEMU   migrate-set-parameters downtime-limit and max-bandwidth (1 TiB/s: QEMU's default cap
#          is 32 MiB/s), the `events` capability, `migrate`, query-migrate every 100 ms to catch
#          a failure; at the MIGRATION event "completed", query-migrate's total-time and downtime.
# Wall time is the script's own clock from sending the request to the destination starting the
# guest (Vireo: its "incoming migration complete" line, printed after the ACK as the vCPUs
# start; QEMU: the destination's RESUME event), the same end point for both. Every migration
# must then show the guest counting on at the destination with no line lost or repeated and no
# memory mismatch, or the bench fails (exit 1, naming the step): it never prints a made-up
# number. Every sample goes to BUILD_DIR/bench/migration-latest.json.
# Ratios are vireo/qemu: below 1, Vireo is faster.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build="$repo/$build"
qemu_bin=${QEMU:-qemu-system-x86_64}
vireo="$build/vireo"
guest="$build/guests/bench_migrate.elf"

die() {
  echo "migration bench: $*" >&2
  exit 1
}
[[ -e "$guest" ]] || die "missing $guest: build first"
[[ " ${MIG_VMMS:-vireo} " != *" vireo "* || -e "$vireo" ]] || die "missing $vireo: build first"
command -v "$qemu_bin" >/dev/null || die "$qemu_bin not found (scripts/install-deps.sh --bench)"
command -v python3 >/dev/null || die "python3 not found"

work=$(mktemp -d /var/tmp/vireo-migbench.XXXXXX)
trap 'rm -rf "$work"' EXIT

mkdir -p "$build/bench"
python3 - "$vireo" "$qemu_bin" "$guest" "$work" "$build/bench/migration-latest.json" <<'PY'
import http.client, json, os, re, select, socket, statistics, subprocess, sys, threading, time

vireo, qemu, guest, work, samples_path = sys.argv[1:6]
runs = int(os.environ.get("MIG_RUNS", "3"))
downtime_ms = int(os.environ.get("MIG_DOWNTIME_MS", "300"))
dirty_rate = int(os.environ.get("MIG_DIRTY_MIB_S", "64"))
buffer_mib = int(os.environ.get("MIG_BUFFER_MIB", "64"))
sizes = os.environ.get("MIG_SIZES", "128M 1G").split()
vmms = os.environ.get("MIG_VMMS", "vireo qemu").split()
if not vmms or set(vmms) - {"vireo", "qemu"}:
    sys.exit(f"migration bench: MIG_VMMS={' '.join(vmms)}: name vireo, qemu or both")
QEMU_MAX_BANDWIDTH = 1 << 40  # bytes/s: no cap in practice
POLL_S = 0.1
MIGRATION_TIMEOUT_S = 300
LINE = re.compile(r"^count (\d+) lap (\d+) late (\d+)$", re.M)


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def serial_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace").replace("\r", "")
    except FileNotFoundError:
        return ""


def lines(path):
    return [tuple(int(x) for x in m) for m in LINE.findall(serial_text(path))]


children = []  # every process started, killed at the end even when a step fails


def spawn(args, **kw):
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **kw)
    children.append(p)
    return p


def wait(pred, timeout, what, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            fail(f"{what}: the process exited with status {proc.returncode}")
        time.sleep(0.005)
    fail(f"timed out waiting for {what}")


def cmdline(load):
    rate = dirty_rate if load == "dirtying" else 0
    return f"mig.dirty_mib_s={rate} mig.buffer_mib={buffer_mib}"


def ready_to_migrate(serial, load):
    """Idle: 3 lines. Dirtying: the guest has written its whole buffer once (lap 1), so the
    migration meets the steady dirty load rather than a buffer still mostly zero."""
    ls = lines(serial)
    return len(ls) >= 3 and (load == "idle" or ls[-1][1] >= 1)


def check_clock(serial, what):
    """The guest timed its rounds with the RTC (not a guess), so both run the same schedule."""
    m = re.search(r"^bench_migrate: .*; tsc (\d+) kHz \((\w+)\)$", serial_text(serial), re.M)
    if not m or m.group(2) != "rtc":
        fail(f"{what}: the guest could not calibrate its clock with the RTC: "
             f"{m.group(0) if m else 'no banner'}")


def check_moved(src_serial, dst_serial, what, proc):
    """The guest runs on at the destination: 3 more lines, the count contiguous across the move
    (the two files read as one, since the pause can fall mid-line) and no memory mismatch."""
    wait(lambda: len(lines(dst_serial)) >= 3, 60, f"{what}: the guest's lines on the destination", proc)
    text = serial_text(src_serial) + serial_text(dst_serial)
    if "MISMATCH" in text:
        fail(f"{what}: the guest found its memory changed: "
             f"{[l for l in text.splitlines() if 'MISMATCH' in l]}")
    seq = [tuple(int(x) for x in m) for m in LINE.findall(text)]
    counts = [s[0] for s in seq]
    if counts != list(range(counts[0], counts[0] + len(counts))):
        fail(f"{what}: the count is not contiguous across the move (source ended at "
             f"{lines(src_serial)[-1][0]}, destination starts at {lines(dst_serial)[0][0]})")
    return seq[-1][2]  # rounds the guest overran so far


# --- Vireo ---------------------------------------------------------------------------------

class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path_ = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path_)


def api(sock, method, path, body=""):
    c = Unix(sock)
    c.request(method, "/api/v1" + path, body=body)
    r = c.getresponse()
    data = json.loads(r.read() or b"{}")
    c.close()
    return r.status, data


class StderrLines:
    """Reads a process's stderr on a thread, each line with the monotonic time it arrived."""

    def __init__(self, proc):
        self.lines = []
        self.done = threading.Event()
        threading.Thread(target=self.run, args=(proc,), daemon=True).start()

    def run(self, proc):
        for raw in proc.stderr:
            self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
        self.done.set()

    def find(self, pattern):
        for t, line in self.lines:
            m = re.search(pattern, line)
            if m:
                return t, m
        return None

    def text(self):
        return "\n".join(l for _, l in self.lines)


VIREO_DONE = (r"migrated to \S+: (\d+) rounds, (\d+) pages \((\d+) MiB\) sent, last dirty rate "
              r"(\d+) pages/s, downtime (\d+) ms, total (\d+) ms")


def vireo_run(size, load, d):
    src_serial, src_sock = os.path.join(d, "src.serial"), os.path.join(d, "src.sock")
    dst_serial, dst_sock = os.path.join(d, "dst.serial"), os.path.join(d, "dst.sock")
    src = spawn([vireo, "run", "--cpus", "1", "--memory", size, "--boot", "pvh", "--kernel", guest,
                 "--cmdline", cmdline(load), "--serial", f"file:{src_serial}", "--api-socket",
                 src_sock, "--no-reboot"], stderr=subprocess.PIPE)
    src_err = StderrLines(src)
    wait(lambda: ready_to_migrate(src_serial, load), 60, "vireo's guest to count", src)
    check_clock(src_serial, "vireo")
    dst = spawn([vireo, "run", "--incoming", "tcp:127.0.0.1:0", "--serial", f"file:{dst_serial}",
                 "--api-socket", dst_sock, "--no-reboot"], stderr=subprocess.PIPE)
    dst_err = StderrLines(dst)
    port = wait(lambda: dst_err.find(r"waiting for an incoming migration on 127\.0\.0\.1:(\d+)"), 20,
                "vireo's destination to listen", dst)[1].group(1)
    body = json.dumps({"uri": f"tcp:127.0.0.1:{port}", "max_downtime_ms": downtime_ms,
                       "bandwidth_mbps": 0})
    t0 = time.monotonic()
    st, ans = api(src_sock, "PUT", "/vm/migrate", body)
    if st != 202:
        fail(f"vireo PUT /vm/migrate: {st} {ans}")
    end = t0 + MIGRATION_TIMEOUT_S
    while not src_err.find(VIREO_DONE):
        if src.poll() is not None:
            src_err.done.wait(5)
            if src_err.find(VIREO_DONE):
                break
            fail(f"vireo's source exited with status {src.returncode} during the migration: "
                 f"{src_err.text()[-600:]}")
        try:
            st, ans = api(src_sock, "GET", "/vm/migrate")
            if st == 200 and ans.get("state") == "failed":
                fail(f"vireo's migration failed: {ans.get('error')}")
        except OSError:
            pass  # the source is exiting; the loop sees it
        if time.monotonic() > end:
            fail(f"vireo's migration did not finish in {MIGRATION_TIMEOUT_S} s")
        src_err.done.wait(POLL_S)
    rounds, pages, mib, dirty, down, total = (int(x) for x in src_err.find(VIREO_DONE)[1].groups())
    try:
        rc = src.wait(timeout=30)
    except subprocess.TimeoutExpired:
        fail("vireo's source did not exit after the migration")
    if rc != 0:
        fail(f"vireo's source exited with status {rc} after 'migrated to'")
    # Printed right after the destination's ACK, as it starts the vCPUs.
    t_running = wait(lambda: dst_err.find("incoming migration complete"), 30,
                     "vireo's destination to run", dst)[0]
    late = check_moved(src_serial, dst_serial, "vireo", dst)
    api(dst_sock, "PUT", "/vm/stop")
    dst.wait(timeout=30)
    return {"total_ms": total, "downtime_ms": down, "wall_ms": (t_running - t0) * 1e3,
            "rounds": rounds, "mib_sent": mib, "pages_sent": pages, "dirty_pages_s": dirty,
            "late_rounds": late}


# --- QEMU ----------------------------------------------------------------------------------

class Qmp:
    def __init__(self, path, proc):
        self.s = socket.socket(socket.AF_UNIX)

        def connected():  # the socket file appears a moment before QEMU listens on it
            try:
                self.s.connect(path)
                return True
            except (FileNotFoundError, ConnectionRefusedError):
                return False
        wait(connected, 30, "QEMU's QMP socket", proc)
        self.buf = b""
        self.replies = []
        self.events = []  # (arrival time, event)
        while not self.replies:
            self.fill()
        self.replies.pop(0)  # greeting
        self.cmd("qmp_capabilities")

    def fill(self):
        """Reads what has arrived (blocking until something does); events get their time."""
        data = self.s.recv(65536)
        if not data:
            fail("QEMU closed its QMP socket")
        self.buf += data
        now = time.monotonic()
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if "event" in msg:
                self.events.append((now, msg))
            else:
                self.replies.append(msg)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.s.sendall(json.dumps(msg).encode() + b"\n")
        while not self.replies:
            self.fill()
        reply = self.replies.pop(0)
        if "error" in reply:
            fail(f"QMP {name}: {reply['error']}")
        return reply["return"]

    def event(self, name, statuses=None):
        """(time, data) of the first event `name` (whose status is in `statuses`), or None."""
        for t, ev in self.events:
            if ev["event"] == name and (statuses is None or ev["data"]["status"] in statuses):
                return t, ev.get("data")
        return None


def qemu_args(size, load, accel, serial, qmp):
    # rtc=on: the guest times its rounds with the CMOS RTC, which microvm leaves out by default.
    return [qemu, "-M", "microvm,rtc=on", "-accel", accel, "-m", size, "-smp", "1", "-nodefaults",
            "-no-user-config", "-display", "none", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-serial", f"file:{serial}", "-qmp", f"unix:{qmp},server=on,wait=off",
            "-kernel", guest, "-append", cmdline(load)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_run(size, load, d, accel):
    src_serial, src_qmp = os.path.join(d, "src.serial"), os.path.join(d, "src.qmp")
    dst_serial, dst_qmp = os.path.join(d, "dst.serial"), os.path.join(d, "dst.qmp")
    src_log, dst_log = open(os.path.join(d, "src.stderr"), "w"), open(os.path.join(d, "dst.stderr"), "w")
    src = spawn(qemu_args(size, load, accel, src_serial, src_qmp), stderr=src_log)
    q = Qmp(src_qmp, src)
    wait(lambda: ready_to_migrate(src_serial, load), 60, "QEMU's guest to count", src)
    check_clock(src_serial, "QEMU")
    port = free_port()
    dst = spawn(qemu_args(size, load, accel, dst_serial, dst_qmp) + ["-incoming", f"tcp:127.0.0.1:{port}"],
                stderr=dst_log)
    qd = Qmp(dst_qmp, dst)
    if qd.cmd("query-status")["status"] != "inmigrate":
        fail("QEMU's destination is not waiting for the migration")
    q.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
    q.cmd("migrate-set-parameters", **{"downtime-limit": downtime_ms, "max-bandwidth": QEMU_MAX_BANDWIDTH})
    params = q.cmd("query-migrate-parameters")
    if params["downtime-limit"] != downtime_ms or params["max-bandwidth"] != QEMU_MAX_BANDWIDTH:
        fail(f"QEMU did not take the migration parameters: {params}")
    t0 = time.monotonic()
    q.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
    end = t0 + MIGRATION_TIMEOUT_S
    ended = ("completed", "failed", "cancelled")
    while not (q.event("MIGRATION", ended) and qd.event("RESUME")):
        ready = select.select([q.s, qd.s], [], [], POLL_S)[0]
        for qm in (q, qd):
            if qm.s in ready:
                qm.fill()
        done = q.event("MIGRATION", ended)
        if done and done[1]["status"] != "completed":
            fail(f"QEMU's migration {done[1]['status']}: {q.cmd('query-migrate').get('error-desc', '')}")
        if not ready:
            info = q.cmd("query-migrate")
            if info.get("status") in ("failed", "cancelled"):
                fail(f"QEMU's migration {info['status']}: {info.get('error-desc', '')}")
            if time.monotonic() > end:
                fail(f"QEMU's migration did not finish in {MIGRATION_TIMEOUT_S} s")
    t_running = qd.event("RESUME")[0]  # the destination starts the guest
    # QEMU 7.2 announces "completed" before it computes total-time and downtime (0 until then).
    info = wait(lambda: (lambda i: i if i.get("total-time") else None)(q.cmd("query-migrate")), 10,
                "QEMU's final migration stats")
    wait(lambda: qd.cmd("query-status")["status"] == "running", 30, "QEMU's destination to run", dst)
    late = check_moved(src_serial, dst_serial, "QEMU", dst)
    ram = info["ram"]
    for p, qm in ((src, q), (dst, qd)):
        qm.cmd("quit")
        p.wait(timeout=30)
    return {"total_ms": info["total-time"], "downtime_ms": info["downtime"],
            "wall_ms": (t_running - t0) * 1e3, "rounds": ram.get("dirty-sync-count"),
            "mib_sent": round(ram["transferred"] / 2**20, 1), "setup_ms": info.get("setup-time"),
            "late_rounds": late}


def qemu_accel():
    """KVM if QEMU runs the guest with it here (as bench/snapshot.sh does), else TCG."""
    notes = []
    for accel in ("kvm", "tcg"):
        d = os.path.join(work, f"probe-{accel}")
        os.makedirs(d)
        serial = os.path.join(d, "serial")
        p = spawn(qemu_args("128M", "idle", accel, serial, os.path.join(d, "qmp")),
                  stderr=subprocess.PIPE)
        try:
            wait(lambda: len(lines(serial)) >= 3, 60, f"QEMU -accel {accel}", p)
            return accel, "; ".join(notes)
        except Failure as e:
            notes.append(f"-accel {accel} refused ({e})")
        finally:
            p.kill()
            p.wait()
    fail("QEMU cannot run the guest: " + "; ".join(notes))


cases = [(size, load) for size in sizes for load in ("idle", "dirtying")]
results = {f"{s} {l}": {"vireo": [], "qemu": []} for s, l in cases}
load_before = open("/proc/loadavg").read().split()[:3]
try:
    accel, accel_note = qemu_accel()
    for size, load in cases:
        for i in range(runs):  # alternate, so both see the same host conditions
            for vmm in vmms:
                d = os.path.join(work, f"{vmm}-{size}-{load}-{i}")
                os.makedirs(d)
                try:
                    r = vireo_run(size, load, d) if vmm == "vireo" else qemu_run(size, load, d, accel)
                finally:
                    for p in children:
                        if p.poll() is None:
                            p.kill()
                            p.wait()
                results[f"{size} {load}"][vmm].append(r)
except (Failure, OSError, subprocess.SubprocessError) as e:
    print(f"migration bench: {e}", file=sys.stderr)
    sys.exit(1)
finally:
    for p in children:
        if p.poll() is None:
            p.kill()
            p.wait()


def med(rs, key):
    xs = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(xs) if xs else float("nan")


def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"


load_after = open("/proc/loadavg").read().split()[:3]
print(f"\nLive migration over localhost TCP, bench_migrate guest, 1 vCPU, max downtime {downtime_ms} ms, "
      f"no bandwidth cap; dirtying = {dirty_rate} MiB/s of pages in a {buffer_mib} MiB buffer; "
      f"QEMU -M microvm,rtc=on -accel {accel}{' (' + accel_note + ')' if accel_note else ''}; "
      f"medians of {runs} runs; load average {' '.join(load_before)} before, {' '.join(load_after)} after")
print("(ratios vireo/qemu, below 1: Vireo faster. total, down: as each VMM reports them (Vireo's "
      "downtime ends at the destination's ACK, QEMU's when its source has sent everything); wall: "
      "request -> the destination runs the guest, by this script's clock; all ms)")
hdr = ("case", "v total", "v down", "v wall", "q total", "q down", "q wall", "total v/q",
       "down v/q", "wall v/q")
print(f"{hdr[0]:14}" + "".join(f"{h:>10}" for h in hdr[1:]))
for size, load in cases:
    v, q = results[f"{size} {load}"].get("vireo", []), results[f"{size} {load}"].get("qemu", [])
    vals = [med(v, "total_ms"), med(v, "downtime_ms"), med(v, "wall_ms"),
            med(q, "total_ms"), med(q, "downtime_ms"), med(q, "wall_ms")]
    print(f"{size + ' ' + load:14}" + "".join(f"{x:10.1f}" for x in vals) +
          "".join(f"{ratio(vals[i], vals[i + 3]):>10}" for i in range(3)))
print("per run (ms, total/downtime/wall), median MiB sent and pre-copy rounds (QEMU: dirty-bitmap "
      "syncs), most guest rounds overrun:")
for size, load in cases:
    for vmm in vmms:
        rs = results[f"{size} {load}"][vmm]
        per_run = " ".join(f"{r['total_ms']}/{r['downtime_ms']}/{r['wall_ms']:.0f}" for r in rs)
        print(f"  {size + ' ' + load:14} {vmm:6} {per_run}  MiB {med(rs, 'mib_sent'):.1f}  "
              f"rounds {med(rs, 'rounds'):.0f}  overrun {max(r['late_rounds'] for r in rs)}")
with open(samples_path, "w") as f:
    json.dump({"case": "migration", "runs": runs, "downtime_limit_ms": downtime_ms,
               "dirty_mib_s": dirty_rate, "buffer_mib": buffer_mib, "qemu_accel": accel,
               "qemu_accel_note": accel_note, "load_before": load_before, "load_after": load_after,
               "samples": results}, f, indent=1)
PY
