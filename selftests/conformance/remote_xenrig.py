# SPDX-License-Identifier: GPL-2.0
# The rig's remote type for the kernel's driver selftests (REMOTE_TYPE=xenrig,
# REMOTE_ARGS=ADDRESS, the port
# XENRIG_PORT or 4790): commands run in the other domain through its
# rexec-server, instead of ssh, which the rig's initramfs systems lack.
# Copied into drivers/net/lib/py/ of the rig's selftests tree, where the
# framework looks for remote_<type>.py.
import base64
import json
import os
import socket
import string
import random
import subprocess
import threading

from lib.py import cmd


class _Pipe:
    """What the framework closes after communicate()."""
    def close(self):
        pass


class _RemoteProc:
    """A command running in the other domain, with the part of the Popen
    interface the framework uses (poll, terminate, communicate)."""
    def __init__(self, addr, request):
        self.returncode = None
        self.stdout = _Pipe()
        self.stderr = _Pipe()
        self._out = b""
        self._err = b""
        self._sock = socket.create_connection(addr, timeout=30)
        self._sock.settimeout(None)
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        self._done = threading.Event()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self):
        try:
            line = self._sock.makefile("rb").readline()
            res = json.loads(line)
            self._out = base64.b64decode(res["out"])
            self._err = base64.b64decode(res["err"])
            self.returncode = res["rc"]
        except (OSError, ValueError) as e:
            self._err = f"xenrig: connection to the remote lost: {e}".encode()
            self.returncode = 255
        self._sock.close()
        self._done.set()

    def poll(self):
        return self.returncode if self._done.is_set() else None

    def terminate(self):
        if not self._done.is_set():
            try:
                self._sock.sendall(b"TERM\n")
            except OSError:
                pass

    kill = terminate

    def wait(self, timeout=None):
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired("remote command", timeout)
        return self.returncode

    def communicate(self, timeout=None):
        self.wait(timeout)
        return self._out, self._err


class Remote:
    def __init__(self, name, dir_path):
        self.addr = (name, int(os.environ.get("XENRIG_PORT", "4790")))
        self.dir_path = dir_path
        self._tmpdir = None

    def __del__(self):
        if self._tmpdir:
            cmd("rm -rf " + self._tmpdir, host=self)
            self._tmpdir = None

    def cmd(self, comm):
        if not isinstance(comm, str):
            comm = " ".join(comm)
        return _RemoteProc(self.addr, {"op": "run", "cmd": comm})

    def deploy(self, what):
        if not self._tmpdir:
            self._tmpdir = "/tmp/" + "".join(random.choice(string.ascii_lowercase) for _ in range(8))
            cmd("mkdir " + self._tmpdir, host=self)
        if not os.path.isabs(what):
            what = os.path.abspath(self.dir_path + "/" + what)
        name = self._tmpdir + "/" + os.path.basename(what)
        with open(what, "rb") as f:
            data = base64.b64encode(f.read()).decode()
        p = _RemoteProc(self.addr, {"op": "put", "path": name, "data": data})
        p.communicate(timeout=60)
        if p.returncode != 0:
            raise Exception("xenrig: deploy failed: " + p._err.decode())
        return name
