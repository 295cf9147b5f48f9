"""``kubectl run -i --rm`` and ``kubectl run -it --rm`` against a real ``pinnace server``
with its node agent, on the runc runtime (an imported busybox image) and on the process
runtime: the pod gets ``stdin``/``stdinOnce`` (and ``tty``), kubectl attaches once it
runs, its input reaches the container, the container's output reaches kubectl, the
container's stdin ends with kubectl's input (stdinOnce) and kubectl deletes the pod.
``-t`` needs a terminal: util-linux ``script`` gives kubectl one.

Pods use the node's network (``--pod-network host``); nothing listens.

Conformance: "Kubectl client Simple pod should support inline execution and attach"
(``kubectl run -i --rm`` with piped input).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.images import IMAGE, busybox_archive
from tests.support.kubectl import Kubectl, kubectl_versions
from tests.support.runc import remove_runc_containers, runc_skip_reason
from tests.support.server import run_server
from tests.support.waiting import wait_until

_RUNC_SKIP = runc_skip_reason()
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.skipif("default" not in kubectl_versions(), reason="kubectl not installed")]
needs_script = pytest.mark.skipif(shutil.which("script") is None, reason="util-linux script not installed")


@pytest.fixture(scope="module", params=["process", pytest.param("runc", marks=pytest.mark.skipif(
    _RUNC_SKIP is not None, reason=str(_RUNC_SKIP)))])
def cluster(request, tmp_path_factory) -> Iterator[tuple[Kubectl, str]]:
    runtime = request.param
    tmp = tmp_path_factory.mktemp(f"run-it-{runtime}")
    data = tmp / "data"
    image = "busybox"  # (the process runtime runs the host's sh)
    if runtime == "runc":
        image = IMAGE
        archive = busybox_archive(tmp / "busybox.tar")
        (data / "agent").mkdir(parents=True)  # the server's agent keeps its images there
        subprocess.run([sys.executable, "-m", "pinnace.cli", "image", "import", str(archive), "--data-dir",
                        str(data / "agent")], check=True, capture_output=True, timeout=120)
    try:
        with run_server(data, "--runtime", runtime, "--node-ip", "127.0.0.1", "--kubelet-port", "0",
                        "--node-name", f"{runtime}-node", agent=True) as server:
            k = Kubectl(kubectl_versions()["default"], server.kubeconfig)
            wait_until(lambda: k.json("get", "nodes")["items"], lambda n: len(n) == 1 and any(
                c["type"] == "Ready" and c["status"] == "True" for c in n[0]["status"]["conditions"]),
                what="node Ready")
            yield k, image
            k("delete", "pods", "--all", "--wait=true", "--timeout=60s", timeout=90)
    finally:
        if runtime == "runc":
            remove_runc_containers(tmp)


def gone(k: Kubectl, name: str) -> bool:
    proc = k.run("get", "pod", name, check=False)
    return proc.returncode != 0 and "NotFound" in proc.stderr


def test_kubectl_run_i_rm_with_piped_input(cluster):
    """No terminal: kubectl's stdin (a pipe) is the container's; at its end the container
    reads EOF (stdinOnce), and kubectl removes the pod once it has completed."""
    k, image = cluster
    proc = k.run("run", "-i", "--rm", "--restart=Never", "piped", f"--image={image}", "--",
                 "sh", "-c", "read x; echo got:$x; while read y; do echo more:$y; done; echo eof",
                 input="hello\nworld\n", timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "got:hello\nmore:world\neof\n" in proc.stdout, proc.stdout
    assert 'pod "piped" deleted' in proc.stdout + proc.stderr
    wait_until(lambda: gone(k, "piped"), lambda ok: ok, timeout=30, what="pod deleted")


def test_kubectl_run_i_attach_sees_its_input_before_eof(cluster):
    """The container's stdin is not closed before kubectl's input has all been read
    (stdinOnce ends stdin at the end of the first attach session, not earlier)."""
    k, image = cluster
    lines = "".join(f"line{i}\n" for i in range(500))
    proc = k.run("run", "-i", "--rm", "--restart=Never", "counted", f"--image={image}", "--",
                 "sh", "-c", "n=0; while read l; do n=$((n+1)); done; echo lines:$n", input=lines, timeout=120,
                 check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "lines:500" in proc.stdout, proc.stdout


@needs_script
async def test_kubectl_run_it_rm_on_a_terminal(cluster, tmp_path: Path):
    """``kubectl run -it --rm ... -- sh``: an interactive shell on the container's terminal
    (``tty: true``); what is typed runs there, its output comes back, ``exit`` ends the pod
    and kubectl deletes it."""
    k, image = cluster
    command = f"stty cols 111 rows 37; {k.binary} run -it --rm --restart=Never t --image={image} -- sh"
    proc = await asyncio.create_subprocess_exec(
        "script", "-qec", command, "/dev/null", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "KUBECONFIG": str(k.kubeconfig), "KUBECACHEDIR": str(tmp_path / "kcache")})
    assert proc.stdin is not None and proc.stdout is not None
    out = b""
    try:
        async with asyncio.timeout(120):
            # Type once kubectl has attached (it says so), as a user would.
            while b"If you don't see a command prompt" not in out:
                chunk = await proc.stdout.read(4096)
                assert chunk, out
                out += chunk
            # The size kubectl sent (the terminal's) reached the container's terminal: the
            # command waits for it, as the resize travels beside the input.
            proc.stdin.write(b"for i in 1 2 3 4 5 6 7 8 9 10; do [ \"$(stty size)\" = \"37 111\" ] && break; "
                             b"sleep 0.2; done; echo size=$(stty size); echo hel\"\"lo; exit\n")
            await proc.stdin.drain()
            while chunk := await proc.stdout.read(4096):
                out += chunk
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode(errors="replace")
    assert "\nhello\r\n" in text, text  # the output, not only the echo of what was typed (hel""lo)
    assert "size=37 111" in text, text
    assert proc.returncode == 0, text
    wait_until(lambda: gone(k, "t"), lambda ok: ok, timeout=30, what="pod deleted")
