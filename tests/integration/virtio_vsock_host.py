#!/usr/bin/env python3
"""Host side of virtio_vsock_test.sh: talks to tests/guests/virtio_vsock.cc through Vireo's
Unix-socket vsock backend (src/virtio/vsock/host_socket.h).

  virtio_vsock_host.py UDS_PATH GUEST_PORT HOST_PORT TIMEOUT_S

Listens on UDS_PATH_HOST_PORT first (the guest's connection lands there), then:
(a) connects to UDS_PATH (retrying until the VMM has created it), writes "CONNECT GUEST_PORT\\n",
    expects "OK <port>\\n", sends "ping", expects "pong", closes;
(b) accepts the guest's connection on the listener, expects "hello host", answers "hello guest",
    and waits for the guest to close.
Prints one line per step; exits 0 when every step worked, 1 otherwise.
"""
import os
import socket
import sys
import time


def read_exactly(sock, n, what):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError(f"EOF while waiting for {what} (got {data!r})")
        data += chunk
    return data


def read_line(sock, what):
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError(f"EOF while waiting for {what} (got {data!r})")
        data += chunk
        if len(data) > 64:
            raise RuntimeError(f"overlong line while waiting for {what}: {data!r}")
    return data.decode().rstrip("\n")


def main():
    uds, guest_port, host_port, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(
        sys.argv[4])
    deadline = time.monotonic() + timeout
    listen_path = f"{uds}_{host_port}"
    if os.path.exists(listen_path):
        os.unlink(listen_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(listen_path)
    listener.listen(4)
    print(f"host: listening on {listen_path}", flush=True)

    # (a) host-initiated.
    conn = None
    while conn is None:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(uds)
            conn = s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not connect to {uds}")
            time.sleep(0.05)
    conn.settimeout(max(1.0, deadline - time.monotonic()))
    conn.sendall(f"CONNECT {guest_port}\n".encode())
    line = read_line(conn, "OK")
    if not line.startswith("OK "):
        raise RuntimeError(f"CONNECT answered {line!r}")
    print(f"host: {line}", flush=True)
    conn.sendall(b"ping")
    reply = read_exactly(conn, 4, "pong")
    print(f"host: received {reply.decode(errors='replace')}", flush=True)
    if reply != b"pong":
        raise RuntimeError(f"expected pong, got {reply!r}")
    conn.close()

    # (b) guest-initiated.
    listener.settimeout(max(1.0, deadline - time.monotonic()))
    peer, _ = listener.accept()
    peer.settimeout(max(1.0, deadline - time.monotonic()))
    msg = read_exactly(peer, 10, "hello host")
    print(f"host: received {msg.decode(errors='replace')}", flush=True)
    if msg != b"hello host":
        raise RuntimeError(f"expected 'hello host', got {msg!r}")
    peer.sendall(b"hello guest")
    rest = peer.recv(64)  # b"" once the guest shuts the connection down
    print(f"host: guest closed{'' if not rest else ' after ' + repr(rest)}", flush=True)
    peer.close()
    listener.close()
    os.unlink(listen_path)
    print("host: done", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError) as e:
        print(f"host: FAIL {e}", flush=True)
        sys.exit(1)
