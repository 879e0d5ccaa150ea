"""The fork server ("zygote") that turns into execution environments.

Why a zygote: a fresh ``python -m awslambdaric`` costs 33–45 ms and ~30 MB PSS
per environment (guide, measured). A parent that has already imported
awslambdaric's Python modules and the function's ``preload`` modules forks a
child in about a millisecond, and the child shares those pages copy-on-write
(~3–4.5 MB PSS each). What the zygote must NOT load:

* awslambdaric's C extension ``runtime_client``: it reads ``AWS_LAMBDA_RUNTIME_API``
  once, in a static initializer, when it is loaded. Each environment has its own
  Runtime API port, so each child loads it after setting its own endpoint.
  awslambdaric tolerates a failed import of it, which is how the zygote blocks it.
* the handler module: importing it is the environment's Init (Init Duration).

Run as ``python -m connstorm.local_stack.lambda_.zygote CONTROL_FD EMULATOR_PID [LABEL...]``
(the labels only make ``ps`` show what the zygote and its forks are). It speaks
JSON lines over the inherited control socket: the first line from the emulator is
the function's config; then ``{"op": "spawn", ...}`` lines, each answered with
``spawned``/``spawn_failed``; every child's exit is reported as
``{"op": "exit", "pid", "status"}`` (``status`` as ``os.waitstatus_to_exitcode``:
negative for a signal). This module imports only the standard library until the
config arrives, and must stay that way.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from typing import Any

from connstorm.local_stack.deathsig import set_parent_death_signal

#: Variables kept from the zygote's own environment; everything else is Lambda's.
_INHERITED_VARS = ("PATH", "LD_LIBRARY_PATH", "LANG", "HOME")
#: Shared libraries awslambdaric's ``runtime_client`` extension links against.
_RUNTIME_CLIENT_LIBS = ("libstdc++.so.6", "libgcc_s.so.1")


def _send(ctl: socket.socket, msg: dict[str, Any]) -> None:
    ctl.sendall(json.dumps(msg).encode() + b"\n")


def _preload(cfg: dict[str, Any]) -> list[str]:
    """Import awslambdaric (minus its C client) and the function's preload modules.

    The collector stays off in the zygote (Python's ``gc.freeze`` documentation:
    disable early in the parent, freeze right before each fork, enable early in
    the child): a collection here would free objects between the preloaded ones,
    and every environment would then write its own objects into those holes,
    copying the pages they share.
    """
    gc.disable()
    errors: list[str] = []
    sys.modules["runtime_client"] = None  # type: ignore[assignment]  # blocks the import
    # The C client is C++: loading libstdc++ here (relocated once, shared by every
    # child) cuts its import in each environment from ~6-15 ms to ~2 ms (measured).
    for lib in _RUNTIME_CLIENT_LIBS:
        try:
            ctypes.CDLL(lib, mode=os.RTLD_GLOBAL | os.RTLD_NOW)
        except OSError as exc:
            errors.append(f"{lib}: {exc}")
    importlib.import_module("awslambdaric.__main__")
    importlib.import_module("awslambdaric.bootstrap")
    importlib.import_module("http.client")  # awslambdaric imports it lazily on init errors
    sys.path.insert(0, cfg["code_dir"])
    for name in cfg.get("preload", ()):
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing optional module must not stop the function
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    sys.path.remove(cfg["code_dir"])
    warm_up_error = _warm_up_libpq()
    if warm_up_error is not None:
        errors.append(warm_up_error)
    return errors


def _warm_up_libpq() -> str | None:
    """Initialise libpq's cryptography here, once, rather than in every environment.

    The first SCRAM login of a process initialises OpenSSL (its default provider,
    SHA-256, HMAC, the random generator): about 1.3 MB of heap that each
    environment made for itself, about a quarter of a frozen environment's memory
    (issue 24, measured with ``/proc/<pid>/smaps``). ``PQencryptPasswordConn``
    with ``scram-sha-256`` runs the same code (a random salt, then the salted
    password: PBKDF2 with HMAC-SHA-256) without a server (PostgreSQL
    documentation, libpq "Miscellaneous Functions"); its ``PGconn`` never
    connects: ``PQconnectStart`` stops at the unknown option, before any socket.
    OpenSSL reseeds its random generator in a forked child (OpenSSL ``EVP_RAND(7)``,
    "Reseeding"), so each environment's SCRAM nonces stay its own. Only when the
    function preloads psycopg: otherwise its handler loads libpq after the fork.
    """
    pq = sys.modules.get("psycopg.pq")
    if pq is None:
        return None
    try:
        conn = pq.PGconn.connect_start(b"connstorm_zygote_warm_up=1")
        try:
            conn.encrypt_password(b"connstorm", b"connstorm", b"scram-sha-256")
        finally:
            conn.finish()
    except Exception as exc:  # an older libpq: environments initialise OpenSSL themselves
        return f"libpq warm-up: {type(exc).__name__}: {exc}"
    return None


def _become_environment(cfg: dict[str, Any], msg: dict[str, Any], zygote_pid: int) -> None:
    """Runs in the forked child: set up the environment, then run awslambdaric for ever."""
    gc.enable()  # off in the zygote (see _preload); the handler's objects need it
    # Own session: a stopped (frozen) process group must not get SIGHUP/SIGCONT
    # from the kernel when it becomes orphaned.
    os.setsid()
    cgroup = msg.get("cgroup")
    if cgroup:
        # Join the environment's CPU cgroup (its share of a CPU) before Init runs.
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w", encoding="ascii") as fh:
                fh.write(str(os.getpid()))
        except OSError as exc:
            os.write(2, f"connstorm: cannot join cgroup {cgroup}: {exc}\n".encode())
    # SIGKILL, not SIGTERM: a frozen (SIGSTOPped) process ignores SIGTERM until continued.
    set_parent_death_signal(signal.SIGKILL, expected_parent=zygote_pid)
    env = {k: os.environ[k] for k in _INHERITED_VARS if k in os.environ}
    env.update(cfg["env"])
    env.update(msg["env"])
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    fd = os.open(msg["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    os.chdir(cfg["code_dir"])
    sys.path.insert(0, cfg["code_dir"])

    del sys.modules["runtime_client"]
    runtime_client = importlib.import_module("runtime_client")  # reads AWS_LAMBDA_RUNTIME_API
    client_mod = sys.modules["awslambdaric.lambda_runtime_client"]
    client_mod.runtime_client = runtime_client  # type: ignore[attr-defined]
    runtime_client.initialize_client(client_mod._user_agent())  # type: ignore[attr-defined]
    # bootstrap read these at import time, in the zygote, before the function's env existed.
    boot = sys.modules["awslambdaric.bootstrap"]
    log_utils = sys.modules["awslambdaric.lambda_runtime_log_utils"]
    boot._AWS_LAMBDA_LOG_FORMAT = log_utils.LogFormat.from_str(  # type: ignore[attr-defined]
        os.environ.get("AWS_LAMBDA_LOG_FORMAT"))
    boot._AWS_LAMBDA_LOG_LEVEL = log_utils._get_log_level_from_env_var(  # type: ignore[attr-defined]
        os.environ.get("AWS_LAMBDA_LOG_LEVEL"))

    sys.argv = ["awslambdaric", cfg["handler"]]
    main = sys.modules["awslambdaric.__main__"].main  # type: ignore[attr-defined]
    main(sys.argv)


class Zygote:
    """The fork server's main loop (runs in the zygote process)."""

    def __init__(self, ctl: socket.socket, emulator_pid: int) -> None:
        self.ctl = ctl
        self.emulator_pid = emulator_pid
        #: Each child's pidfd: readable once it has exited (and only then).
        self.children: dict[int, int] = {}
        self.cfg: dict[str, Any] = {}
        self.sel = selectors.DefaultSelector()
        self.buf = b""

    def run(self) -> None:
        """Read the config, preload, then serve spawn requests until the emulator goes.

        A child's exit is seen on its pidfd (``pidfd_open(2)``: "becomes readable
        when the process terminates"), not through SIGCHLD. A SIGCHLD handler is
        also called when a child stops or continues (``sigaction(2)``,
        ``SA_NOCLDSTOP``, which Python's ``signal`` cannot set): every freeze and
        every thaw of an environment woke this process, two wake-ups per warm
        invocation for nothing. With SIGCHLD at its default (ignored) the kernel
        drops those notifications.
        """
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, lambda *_: self._exit())
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the toolkit's to handle
        line = self._read_line()
        if line is None:
            return
        self.cfg = json.loads(line)
        errors = _preload(self.cfg)
        _send(self.ctl, {"op": "ready", "preload_errors": errors, "pid": os.getpid()})
        self.sel.register(self.ctl, selectors.EVENT_READ)
        while True:
            for key, _ in self.sel.select():
                if key.fileobj is self.ctl:
                    self._on_control()
                else:
                    self._reap(key.data)

    def _read_line(self) -> bytes | None:
        while b"\n" not in self.buf:
            data = self.ctl.recv(65536)
            if not data:
                return None
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def _on_control(self) -> None:
        data = self.ctl.recv(65536)
        if not data:
            self._exit()
        self.buf += data
        while b"\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\n")
            msg = json.loads(line)
            if msg.get("op") == "spawn":
                self._spawn(msg)

    def _spawn(self, msg: dict[str, Any]) -> None:
        zygote_pid = os.getpid()
        gc.freeze()  # the collector of the child never scans (so never writes) our objects
        try:
            pid = os.fork()
        except OSError as exc:
            _send(self.ctl, {"op": "spawn_failed", "env_id": msg["env_id"], "error": str(exc)})
            return
        if pid == 0:
            code = 1
            try:
                self.sel.close()
                self.ctl.close()
                for pidfd in self.children.values():  # the siblings' pidfds are not its own
                    os.close(pidfd)
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                _become_environment(self.cfg, msg, zygote_pid)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        # The child is ours until we wait for it, so its pid cannot be reused here.
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:  # out of fds: a child whose exit we cannot see must go
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            _send(self.ctl, {"op": "spawn_failed", "env_id": msg["env_id"],
                             "error": f"pidfd_open: {exc}"})
            return
        self.children[pid] = pidfd
        self.sel.register(pidfd, selectors.EVENT_READ, pid)
        _send(self.ctl, {"op": "spawned", "env_id": msg["env_id"], "pid": pid})

    def _reap(self, pid: int) -> None:
        """``pid`` has exited (its pidfd is readable): collect it and report it."""
        pidfd = self.children.pop(pid)
        self.sel.unregister(pidfd)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return
        _send(self.ctl, {"op": "exit", "pid": pid,
                         "status": os.waitstatus_to_exitcode(status)})

    def _exit(self) -> None:
        """The emulator is gone or asked us to go: no environment may outlive us."""
        for pid in list(self.children):
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    continue
        os._exit(0)


def main(argv: list[str]) -> None:
    """Entry point: ``python -m connstorm.local_stack.lambda_.zygote FD PID [LABEL...]``."""
    ctl_fd, emulator_pid = int(argv[1]), int(argv[2])
    set_parent_death_signal(signal.SIGKILL, expected_parent=emulator_pid)
    ctl = socket.socket(fileno=ctl_fd)
    ctl.setblocking(True)
    with contextlib.suppress(BrokenPipeError):
        Zygote(ctl, emulator_pid).run()


if __name__ == "__main__":
    main(sys.argv)
