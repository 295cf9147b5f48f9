"""``runc exec`` with a terminal (``kubectl exec -t``), and the exit code of what it ran.

runc gives a new terminal's master side to a caller only when it detaches
(``runc exec --detach --tty --console-socket S``: without ``--detach`` it copies the
terminal to its own stdio, which must then be a terminal, and refuses a console
socket).  Detached, runc exits at once and the command is re-parented to the nearest
child subreaper -- so, as containerd's shim does, this small helper makes itself one,
runs ``runc exec --detach``, and waits for the command to learn its exit status.  The
kubelet listens on the console socket (the master arrives there over ``SCM_RIGHTS``)
and reads the helper's report on its stdout, one line each:

- ``pid N`` once the command runs (N: its pid on the host), or ``error`` when runc
  failed (runc's own messages are then on the helper's stderr);
- ``exit N`` when the command has ended: its exit code, 128+S when killed by signal S.

Run as ``python3 -I -S ttyexec.py RUNC ROOT ID CONSOLE_SOCKET PID_FILE CMD...``: it imports
only builtin modules so that it starts in a few tens of milliseconds.  The kubelet's side
is :func:`start` (its imports are inside it, to keep the helper's start-up small).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stdio import ExecProcess

PR_SET_CHILD_SUBREAPER = 36
UNKNOWN_EXIT_CODE = 255  # the status was lost (the command was somehow not our child)


def runc_message(stderr: str) -> str:
    """runc's last error line, from its logrus text (``msg="..."``)."""
    import re

    for line in reversed(stderr.strip().splitlines()):
        m = re.search(r'msg="((?:[^"\\]|\\.)*)"', line)
        if m and ("level=error" in line or "level=fatal" in line):
            return m.group(1).replace('\\"', '"')
        if line.strip():
            return line.strip()
    return stderr.strip()


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def _wait_for(pid: int) -> int:
    """Reap children (orphans of the command come to us too) until ``pid`` is one of them;
    its exit code."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return UNKNOWN_EXIT_CODE
        except InterruptedError:
            continue
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def main(argv: list[str]) -> int:
    import ctypes

    runc, root, container_id, console_socket, pid_file, *cmd = argv
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        os.write(2, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}\n".encode())
        _say("error")
        return 1
    # containerd sets TERM for commands run with a terminal, as docker does.
    args = [runc, "--root", root, "exec", "--detach", "--tty", "--console-socket", console_socket,
            "--pid-file", pid_file, "--env", "TERM=xterm", container_id, *cmd]
    try:
        runc_pid = os.posix_spawn(runc, args, os.environ)
        _, status = os.waitpid(runc_pid, 0)
        rc = os.waitstatus_to_exitcode(status)
    except OSError as e:
        os.write(2, f"{runc}: {e.strerror}\n".encode())
        rc = -1
    if rc != 0:
        _say("error")
        return 1
    with open(pid_file) as f:
        pid = int(f.read().strip())
    _say(f"pid {pid}")
    _say(f"exit {_wait_for(pid)}")
    return 0


# ---- the kubelet's side ----------------------------------------------------------------------------


async def start(runc: str, root: Path, container_id: str, cmd: list[str], pid_file: Path, *, stdin: bool,
                timeout: float) -> ExecProcess:
    """Run ``cmd`` in the container on a new terminal through the helper; the terminal's
    master side, the command's exit code and a kill of the command in an ExecProcess.
    Raises RuntimeError_ with runc's message when it could not start."""
    import asyncio
    import contextlib
    import shutil
    import signal
    import socket
    import tempfile

    from .base import RuntimeError_
    from .stdio import receive_fd, terminal_process

    # A short directory of our own: a unix socket's path may not exceed 107 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="pinnace-tty-"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    helper: asyncio.subprocess.Process | None = None
    pid = 0
    try:
        listener.bind(str(tmp / "console.sock"))
        listener.listen(1)
        listener.setblocking(False)
        helper = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", __file__, runc, str(root), container_id, str(tmp / "console.sock"),
            str(pid_file), *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        assert helper.stdout is not None and helper.stderr is not None
        async with asyncio.timeout(timeout):
            first = await helper.stdout.readline()
            if not first.startswith(b"pid "):
                err = (await helper.stderr.read()).decode(errors="replace")
                await helper.wait()
                raise RuntimeError_(f"runc exec: {runc_message(err) or 'failed'}")
            pid = int(first.split()[1])
            # runc sent the master before it started the command: it is waiting in the socket.
            master = await receive_fd(listener)
    except BaseException:
        if helper is not None and helper.returncode is None:
            if pid:  # started, but its terminal did not reach us
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                helper.kill()
            await helper.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pid_file)
        raise
    finally:
        listener.close()
        shutil.rmtree(tmp, ignore_errors=True)

    stdout = helper.stdout
    exit_code: int | None = None

    async def wait() -> int:
        nonlocal exit_code
        if exit_code is None:
            line = await stdout.readline()
            await helper.wait()
            exit_code = int(line.split()[1]) if line.startswith(b"exit ") else UNKNOWN_EXIT_CODE
        return exit_code

    def kill() -> None:
        # While the helper lives it has not reaped the command: the pid is still the command's.
        if helper.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    return await terminal_process(master, wait, stdin=stdin, kill=kill,
                                  cleanup=lambda: pid_file.unlink(missing_ok=True))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
