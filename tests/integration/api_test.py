#!/usr/bin/env python3
"""The control API end to end: `vireo run --api-socket` with the api_counter guest.

    api_test.py VIREO GUESTS_DIR API_YAML [--accel emu | --irqchip split]

(With --accel emu every VM runs on the software CPU, with --irqchip split on KVM's split
irqchip: the same checks.)

Every operation in docs/api.yaml is called and each answer (status, JSON body) is checked
against the document: the status must be one the operation lists, and the body must match
that response's schema. Along the way it proves:
  - pause: the guest's serial counter stops (no output for 1 s, no exits counted) and the
    vCPU is reported paused; resume: the counter goes on with no gap and no repeat;
  - wrong-state calls are 409 with a reason (resume while running, pause twice, shutdown
    while paused), an unknown path is 404, a wrong method is 405, a bad body is 400;
  - concurrent clients pausing and resuming at once get only 200/409 answers and leave the
    guest counting without gaps;
  - counters: exits per reason per vCPU, and virtio-blk counters for a --disk;
  - reset restarts the guest (count 0 again, boots 2); shutdown (ACPI power button) makes
    the guest power off by itself (status 0); stop ends vireo at once (status 0) and the
    socket is removed.
Exit 77 (skipped) without PyYAML (Debian's python3-yaml).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

from unix_http import UnixConnection

try:
    import yaml
except ImportError:
    print("SKIP: PyYAML (python3-yaml) is not installed")
    sys.exit(77)

PREFIX = "/api/v1"


class Api:
    """Calls the API and checks every answer against the OpenAPI document."""

    def __init__(self, sock, spec):
        self.sock = sock
        self.spec = spec
        self.called = set()  # (method, documented path)

    def call(self, method, path, body=None, documented=True):
        conn = UnixConnection(self.sock)
        try:
            conn.request(method, PREFIX + path, body=body)
            resp = conn.getresponse()
            raw = resp.read()
            status, ctype, allow = resp.status, resp.getheader("Content-Type", ""), resp.getheader("Allow")
        finally:
            conn.close()
        check("application/json" in ctype, f"{method} {path}: Content-Type {ctype!r}")
        data = json.loads(raw)
        if status >= 400:
            check(isinstance(data.get("error"), str) and data["error"], f"{method} {path}: error body {data}")
        if documented:
            self.check_documented(method, path, status, data)
        return status, data, allow

    def check_documented(self, method, path, status, data):
        op = self.spec["paths"].get(path, {}).get(method.lower())
        check(op is not None, f"{method} {path} is not in docs/api.yaml")
        self.called.add((method, path))
        responses = op["responses"]
        check(str(status) in responses, f"{method} {path}: status {status} not documented ({list(responses)})")
        response = self.resolve(responses[str(status)])
        schema = response["content"]["application/json"]["schema"]
        validate(self, data, schema, f"{method} {path} {status}")

    def resolve(self, node):
        while "$ref" in node:
            parts = node["$ref"].lstrip("#/").split("/")
            node = self.spec
            for p in parts:
                node = node[p]
        return node


def validate(api, value, schema, where):
    """The subset of JSON Schema docs/api.yaml uses."""
    schema = api.resolve(schema)
    kind = schema.get("type")
    if "enum" in schema:
        check(value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}")
    if kind == "object":
        check(isinstance(value, dict), f"{where}: {value!r} is not an object")
        for key in schema.get("required", []):
            check(key in value, f"{where}: missing required key {key!r} in {value}")
        props = schema.get("properties", {})
        for key, sub in value.items():
            if key in props:
                validate(api, sub, props[key], f"{where}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(api, sub, schema["additionalProperties"], f"{where}.{key}")
    elif kind == "array":
        check(isinstance(value, list), f"{where}: {value!r} is not an array")
        for i, item in enumerate(value):
            validate(api, item, schema.get("items", {}), f"{where}[{i}]")
    elif kind == "integer":
        check(isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an integer")
    elif kind == "string":
        check(isinstance(value, str), f"{where}: {value!r} is not a string")


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def counts(serial_path):
    # The API socket can appear before vireo has created the serial file.
    if not os.path.exists(serial_path):
        return [], ""
    with open(serial_path, "rb") as f:
        text = f.read().decode(errors="replace").replace("\r", "")
    return [int(m) for m in re.findall(r"^count (\d+)$", text, re.M)], text


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise Failure(f"timed out waiting for {what}")


def check_sequence(seq, what):
    """0, 1, 2, ... with no gap and no repeat."""
    check(seq == list(range(len(seq))), f"{what}: counter not contiguous: {seq[:5]}...; first bad at "
          + str(next((i for i, v in enumerate(seq) if v != i), None)))


ACCEL = []  # extra `vireo run` options for every VM: the optional trailing mode pair


def start_vm(vireo, guests, work, name, extra=()):
    serial = os.path.join(work, f"{name}.serial")
    sock = os.path.join(work, f"{name}.sock")
    log = open(os.path.join(work, f"{name}.stderr"), "w+")
    proc = subprocess.Popen([vireo, "run", "--kernel", os.path.join(guests, "api_counter.elf"),
                             "--serial", f"file:{serial}", "--api-socket", sock, *ACCEL, *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    wait_for(lambda: os.path.exists(sock) or proc.poll() is not None, 20, "the API socket")
    check(proc.poll() is None, f"vireo exited early with {proc.returncode}")
    wait_for(lambda: len(counts(serial)[0]) >= 3, 30, "the guest to count")
    return proc, serial, sock, log


def main():
    vireo, guests, api_yaml = sys.argv[1:4]
    ACCEL[:] = sys.argv[4:]
    with open(api_yaml) as f:
        spec = yaml.safe_load(f)
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    work = tempfile.mkdtemp(prefix="vireo-api-")
    disk = os.path.join(work, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    t0 = time.monotonic()
    procs = []
    try:
        # ---- VM 1: info, counters, pause/resume, 409s, concurrency, reset, shutdown.
        proc, serial, sock, log = start_vm(vireo, guests, work, "vm1", ["--disk", f"path={disk}"])
        procs.append(proc)
        api = Api(sock, spec)

        st, info, _ = api.call("GET", "/vm")
        check(st == 200 and info["state"] == "running", f"GET /vm: {st} {info}")
        check(info["config"]["vcpus"] == 1 and info["config"]["memory_bytes"] == 256 << 20, f"config {info}")
        check(info["config"]["devices"] == ["blk0"] and info["boots"] == 1, f"devices/boots {info}")

        st, ctr, _ = api.call("GET", "/vm/counters")
        check(st == 200 and ctr["vcpus"][0]["exits"]["io"] > 0, f"counters {ctr}")
        check(ctr["devices"] and ctr["devices"][0]["name"] == "blk0"
              and "reads" in ctr["devices"][0]["counters"], f"device counters {ctr['devices']}")

        st, err, _ = api.call("PUT", "/vm/resume")
        check(st == 409 and "not paused" in err["error"], f"resume while running: {st} {err}")

        # Pause: silence on the serial line and no exits while paused.
        st, ans, _ = api.call("PUT", "/vm/pause")
        check(st == 200 and ans["state"] == "paused", f"pause: {st} {ans}")
        before, _ = counts(serial)
        io_before = api.call("GET", "/vm/counters")[1]["vcpus"][0]["exits"]["io"]
        time.sleep(1.0)
        after, _ = counts(serial)
        check(after == before, f"output while paused: {before[-1:]} -> {after[-1:]}")
        io_after = api.call("GET", "/vm/counters")[1]["vcpus"][0]["exits"]["io"]
        check(io_after == io_before, f"exits while paused: io {io_before} -> {io_after}")
        check(api.call("GET", "/vm")[1]["state"] == "paused", "state not paused")
        st, err, _ = api.call("PUT", "/vm/pause")
        check(st == 409 and "already paused" in err["error"], f"pause twice: {st} {err}")
        st, err, _ = api.call("PUT", "/vm/shutdown")
        check(st == 409 and "paused" in err["error"], f"shutdown while paused: {st} {err}")
        # Snapshot (snapshot_test.py covers it fully, virtio devices included): this VM's
        # virtio disk is saved with it (200, state written); a body without a path is 400.
        snap_dir = os.path.join(work, "snap")
        st, err, _ = api.call("PUT", "/vm/snapshot", body=json.dumps({"path": snap_dir}))
        check(st == 200 and os.path.exists(os.path.join(snap_dir, "state")),
              f"snapshot with a disk: {st} {err}")
        st, err, _ = api.call("PUT", "/vm/snapshot", body="{}")
        check(st == 400, f"snapshot without a path: {st} {err}")
        # Migration (migration_test.py covers it fully): refused for a paused VM (409) and a body
        # without a uri (400); nothing started, so GET says none.
        st, err, _ = api.call("PUT", "/vm/migrate", body=json.dumps({"uri": "tcp:127.0.0.1:1"}))
        check(st == 409 and "paused" in err["error"], f"migrate while paused: {st} {err}")
        st, err, _ = api.call("PUT", "/vm/migrate", body="{}")
        check(st == 400, f"migrate without a uri: {st} {err}")
        for body in ({"uri": "tcp:127.0.0.1:1", "postcopy": 1},
                     {"uri": "tcp:127.0.0.1:1", "postcopy_after_rounds": 2},
                     {"uri": "tcp:127.0.0.1:1", "postcopy": True, "postcopy_after_rounds": 0}):
            st, err, _ = api.call("PUT", "/vm/migrate", body=json.dumps(body))
            check(st == 400, f"migrate {body}: {st} {err}")
        st, ans, _ = api.call("GET", "/vm/migrate")
        check(st == 200 and ans["state"] == "none", f"migration status: {st} {ans}")
        st, ans, _ = api.call("PUT", "/vm/resume", body="{}")
        check(st == 200 and ans["state"] == "running", f"resume: {st} {ans}")
        # A migration to a port nobody listens on: 202 (with the post-copy fields when asked
        # for), then it fails and the VM runs on.
        st, ans, _ = api.call("PUT", "/vm/migrate", body=json.dumps(
            {"uri": "tcp:127.0.0.1:1", "postcopy": True}))
        check(st == 202 and ans["state"] == "active" and ans.get("postcopy_after_rounds") == 3
              and ans.get("postcopy_switched") is False, f"migrate with postcopy: {st} {ans}")
        wait_for(lambda: api.call("GET", "/vm/migrate")[1]["state"] != "active", 10, "the migration to fail")
        st, ans, _ = api.call("PUT", "/vm/migrate", body=json.dumps({"uri": "tcp:127.0.0.1:1"}))
        check(st == 202 and ans["state"] == "active", f"migrate: {st} {ans}")
        wait_for(lambda: api.call("GET", "/vm/migrate")[1]["state"] != "active", 10, "the migration to fail")
        st, ans, _ = api.call("GET", "/vm/migrate")
        check(ans["state"] == "failed" and "cannot connect" in ans["error"], f"migration status: {ans}")
        last = before[-1]
        wait_for(lambda: counts(serial)[0][-1] >= last + 5, 10, "counting after resume")
        check_sequence(counts(serial)[0], "after resume")

        # Errors the router answers.
        st, err, _ = api.call("GET", "/nope", documented=False)
        check(st == 404, f"unknown path: {st} {err}")
        st, err, allow = api.call("GET", "/vm/pause", documented=False)
        check(st == 405 and allow == "PUT", f"wrong method: {st} {err} Allow={allow}")
        st, err, _ = api.call("PUT", "/vm/pause", body="not json")
        check(st == 400, f"bad body: {st} {err}")
        # No --balloon: the balloon calls are 409 with the reason (VM 2 has one).
        for method, body in (("GET", None), ("PUT", json.dumps({"target_bytes": 0}))):
            st, err, _ = api.call(method, "/vm/balloon", body=body)
            check(st == 409 and "no balloon device" in err["error"], f"{method} balloon without one: {st} {err}")

        # Concurrent clients: 6 threads pause and resume at once; only 200/409, never a crash.
        statuses, lock = [], threading.Lock()

        def client():
            for _ in range(5):
                for action in ("pause", "resume"):
                    s = api.call("PUT", f"/vm/{action}")[0]
                    with lock:
                        statuses.append(s)
        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(set(statuses) <= {200, 409} and 200 in statuses, f"concurrent statuses {sorted(set(statuses))}")
        if api.call("GET", "/vm")[1]["state"] == "paused":
            check(api.call("PUT", "/vm/resume")[0] == 200, "final resume")
        last = counts(serial)[0][-1]
        wait_for(lambda: counts(serial)[0][-1] >= last + 3, 10, "counting after the concurrent clients")
        check_sequence(counts(serial)[0], "after concurrent pause/resume")

        # Reset: the guest starts over (a second count 0), the API answers for the new boot.
        st, ans, _ = api.call("PUT", "/vm/reset")
        check(st == 200 and ans["state"] == "stopping", f"reset: {st} {ans}")
        wait_for(lambda: api.call("GET", "/vm")[1]["boots"] == 2, 20, "the second boot")
        wait_for(lambda: counts(serial)[0].count(0) == 2 and counts(serial)[0][-1] >= 2, 30,
                 "the guest to count again after reset")

        # Shutdown: the ACPI power button; the guest powers off by itself.
        st, ans, _ = api.call("PUT", "/vm/shutdown")
        check(st == 200 and ans["state"] == "shutting_down", f"shutdown: {st} {ans}")
        rc = proc.wait(timeout=20)
        _, text = counts(serial)
        check(rc == 0, f"vireo exit status after shutdown {rc}")
        check("power button" in text, "guest did not see the power button")
        check(not os.path.exists(sock), "socket left behind")

        # ---- VM 2: stop ends vireo at once.
        proc2, serial2, sock2, log2 = start_vm(vireo, guests, work, "vm2", ["--no-reboot", "--balloon"])
        procs.append(proc2)
        api2 = Api(sock2, spec)
        # The balloon (this guest has no driver, so only the device's num_pages moves).
        st, ans, _ = api2.call("GET", "/vm/balloon")
        check(st == 200 and ans["num_pages"] == 0 and ans["memory_bytes"] == 256 << 20, f"balloon: {st} {ans}")
        st, ans, _ = api2.call("PUT", "/vm/balloon", body=json.dumps({"target_bytes": 64 << 20}))
        check(st == 200 and ans["num_pages"] == 16384 and ans["target_bytes"] == 64 << 20, f"set balloon: {st} {ans}")
        st, ans, _ = api2.call("GET", "/vm/balloon")
        check(ans["num_pages"] == 16384 and ans["actual_pages"] == 0, f"balloon after set: {ans}")
        for body, phrase in ((json.dumps({"target_bytes": (256 << 20) + 4096}), "above the VM's memory"),
                             (json.dumps({"target_bytes": 1000}), "not a multiple of 4096"),
                             ("{}", "target_bytes"), (json.dumps({"target_bytes": -1}), "target_bytes")):
            st, err, _ = api2.call("PUT", "/vm/balloon", body=body)
            check(st == 400 and phrase in err["error"], f"balloon {body}: {st} {err}")
        check(api2.call("GET", "/vm/balloon")[1]["num_pages"] == 16384, "a refused target changed the balloon")
        st, ans, _ = api2.call("PUT", "/vm/stop")
        check(st == 200 and ans["state"] == "stopping", f"stop: {st} {ans}")
        rc = proc2.wait(timeout=10)
        log2.seek(0)
        stderr2 = log2.read()
        check(rc == 0 and "stopped through the control API" in stderr2, f"stop: status {rc}, stderr {stderr2!r}")
        check("power button" not in counts(serial2)[1], "stop asked the guest")
        check(not os.path.exists(sock2), "socket left behind after stop")

        missing = documented - api.called - api2.called
        check(not missing, f"documented operations never called: {sorted(missing)}")
        print(f"PASS api_test: {len(documented)} documented operations checked in {time.monotonic() - t0:.1f} s")
        return 0
    except Failure as e:
        print(f"FAIL api_test: {e}")
        for name in ("vm1", "vm2"):
            for ext in ("stderr", "serial"):
                p = os.path.join(work, f"{name}.{ext}")
                if os.path.exists(p):
                    with open(p, errors="replace") as f:
                        print(f"--- {name}.{ext} (tail):\n" + "".join(f.readlines()[-10:]))
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
