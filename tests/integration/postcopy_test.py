#!/usr/bin/env python3
"""Post-copy live migration between `vireo run` processes on localhost, with the
snapshot_counter guest (it hashes a 16 MiB buffer at CPL3 every round, checks the hash the
round before left, dirties 64 pages and prints "count N verified V sum S" every ~20 ms). Under
a 50 Mbit/s cap and a 1 ms downtime limit its pre-copy never converges, so with
{"postcopy": true, "postcopy_after_rounds": 1} it switches after the first round.

    postcopy_test.py VIREO GUESTS_DIR

It proves:
  - PUT /vm/migrate checks the post-copy fields (400);
  - the destination killed after the switch: the source reports the documented failure,
    keeps the VM paused with all its memory, and PUT /vm/resume runs it on with its memory
    hash intact;
  - a post-copy migration completes: GET /vm/migrate shows the post-copy phase, the source
    exits 0 naming the pages the destination asked for (more than zero: the guest touched
    pages that had not arrived), the destination continues the counter at exactly N+1 and
    every round verifies the hash the round before left (pages fetched on demand and in the
    background are the source's);
  - the source killed after the switch: the destination stops with status 1 and a message
    saying the VM is lost there and the source holds its memory.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_test import Failure, Vm, check, print_log_tails, rounds, serial_text, wait_for  # noqa: E402
from migration_test import Incoming, check_continues, migrate, wait_migration_end  # noqa: E402

POSTCOPY = {"postcopy": True, "postcopy_after_rounds": 1, "max_downtime_ms": 1,
            "bandwidth_mbps": 50}


def check_chain(serial_path, what):
    """Every round in one VM's serial output follows the one before: count + 1 and the hash it
    verified is the one the round before left."""
    seq = rounds(serial_path)
    for prev, cur in zip(seq, seq[1:]):
        check(cur[0] == prev[0] + 1 and cur[1] == prev[2],
              f"{what}: round {cur} does not follow {prev}")
    check("MISMATCH" not in serial_text(serial_path), f"{what}: the guest saw its memory change")


def wait_switched(src, dst, what):
    """Until both sides are past the switch: the destination runs the guest and the source has
    its acknowledgement (GET /vm/migrate's phase is "post-copy")."""
    wait_for(lambda: "switched to post-copy" in dst.stderr() or dst.proc.poll() is not None, 60,
             f"{what}: the destination to run the guest in post-copy")
    check(dst.proc.poll() is None, f"{what}: the destination exited: {dst.stderr()}")
    wait_for(lambda: src.proc.poll() is not None or
             src.api("GET", "/vm/migrate")[1].get("phase") == "post-copy", 10,
             f"{what}: the source to see the switch")
    check(src.proc.poll() is None, f"{what}: the source exited (post-copy too short?): {src.stderr()}")


def main():
    vireo, guests = sys.argv[1:3]
    kernel = os.path.join(guests, "snapshot_counter.elf")
    work = tempfile.mkdtemp(prefix="vireo-postcopy-")
    t0 = time.monotonic()
    procs = []
    try:
        src = Vm(vireo, work, "src", ["--kernel", kernel])
        procs.append(src)
        # ~150 rounds of 64 random pages: most of the buffer is non-zero, so the pages left
        # after the switch take ~2 s at 50 Mbit/s (zero pages would go in a few ms).
        src.wait_rounds(150)
        for body in ({"postcopy": 1}, {"postcopy_after_rounds": 2},
                     {"postcopy": True, "postcopy_after_rounds": 0},
                     {"postcopy": True, "postcopy_after_rounds": 31}):
            st, ans = src.api("PUT", "/vm/migrate", json.dumps({"uri": "tcp:127.0.0.1:1", **body}))
            check(st == 400, f"bad body {body}: {st} {ans}")

        # The destination killed after the switch: the VM stays paused here, whole, and resumes.
        dst = Incoming(vireo, work, "killed")
        procs.append(dst)
        migrate(src, dst.uri, **POSTCOPY)
        wait_switched(src, dst, "killed destination")
        dst.proc.kill()
        ans = wait_migration_end(src)
        check(ans["state"] == "failed" and ans["postcopy_switched"] and
              "post-copy failed after the destination took over the guest" in ans["error"] and
              "PUT /vm/resume" in ans["error"], f"killed destination: {ans}")
        killed_error = ans["error"]
        st, info = src.api("GET", "/vm")
        check(st == 200 and info["state"] == "paused", f"killed destination: source {st} {info}")
        st, info = src.api("PUT", "/vm/resume")
        check(st == 200 and info["state"] == "running", f"resume after the failure: {st} {info}")
        n = src.rounds()[-1][0]
        wait_for(lambda: src.rounds()[-1][0] >= n + 3, 20, "the source to count on after resume")
        check_chain(src.serial, "resumed source")

        # The real thing: the guest moves in post-copy and continues exactly.
        dst = Incoming(vireo, work, "dst")
        procs.append(dst)
        migrate(src, dst.uri, **POSTCOPY)
        phases = set()
        deadline = time.monotonic() + 90
        while src.proc.poll() is None and time.monotonic() < deadline:
            try:
                st, ans = src.api("GET", "/vm/migrate")
                if st == 200:
                    phases.add(ans.get("phase", ""))
                    check(ans["state"] != "failed", f"post-copy migration failed: {ans}")
            except OSError:
                pass  # the source exited between poll() and the call
            time.sleep(0.02)
        rc = src.proc.wait(timeout=10)
        m = re.search(r"migrated to \S+: (\d+) rounds, (\d+) pages \((\d+) MiB\) sent, .*downtime "
                      r"(\d+) ms, total (\d+) ms; post-copy: (\d+) pages, (\d+) requested by the "
                      r"destination, (\d+) ms", src.stderr())
        check(rc == 0 and m, f"source status {rc}: {src.stderr()}")
        stats = [int(x) for x in m.groups()]
        check("post-copy" in phases, f"GET /vm/migrate never showed the post-copy phase: {phases}")
        check(stats[0] == 1, f"expected the switch after round 1, got {stats[0]} rounds")
        check(stats[5] > 0 and stats[6] > 0,
              f"expected pages fetched on demand: {stats[5]} missing, {stats[6]} requested")
        last = check_continues(src.serial, dst, "post-copy migration")
        check(dst.proc.poll() is None, f"the destination stopped: {dst.stderr()}")
        wait_for(lambda: "post-copy complete" in dst.stderr(), 10, "the destination's completion")

        # The source killed after the switch: the destination cannot go on and says so.
        dst2 = Incoming(vireo, work, "orphan")
        procs.append(dst2)
        migrate(dst, dst2.uri, **POSTCOPY)
        wait_switched(dst, dst2, "killed source")
        dst.proc.kill()
        rc = dst2.wait_exit()
        lost = dst2.stderr().strip().splitlines()[-1]
        check(rc == 1 and "post-copy failed after the switch" in lost and
              "keeps its whole memory, paused" in lost, f"killed source: status {rc}: {lost}")

        print(f"  killed destination: {killed_error}")
        print(f"  killed source: {lost}")
        print(f"PASS postcopy_test: counter {last} -> {last + 1}; {stats[0]} pre-copy round, "
              f"{stats[1]} pages ({stats[2]} MiB) sent, downtime {stats[3]} ms, total {stats[4]} ms; "
              f"post-copy: {stats[5]} pages, {stats[6]} requested, {stats[7]} ms; "
              f"in {time.monotonic() - t0:.1f} s")
        return 0
    except Failure as e:
        print(f"FAIL postcopy_test: {e}")
        print_log_tails(work, ("src", "killed", "dst", "orphan"))
        return 1
    finally:
        for p in procs:
            p.kill()


if __name__ == "__main__":
    sys.exit(main())
