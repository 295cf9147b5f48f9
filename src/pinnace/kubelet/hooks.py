"""Container lifecycle hooks (postStart, preStop) as ``pkg/kubelet/lifecycle/handlers.go`` runs them.

Handlers: ``exec`` (in the container; fails on a non-zero exit), ``httpGet`` (fails only when
the request itself fails: the kubelet ignores the status code), ``sleep`` (``seconds``).

What the pod worker does with a result:

* postStart failed: record event ``FailedPostStartHook`` / "PostStartHook failed" (the detailed
  message is kept out of events: it may hold secrets), kill the container with reason
  ``FailedPostStartHook`` and restart it per restartPolicy.
* preStop failed: record ``FailedPreStopHook`` / "PreStopHook failed"; the container is
  stopped anyway.  preStop runs inside the pod's grace period: pass ``deadline`` (the end of
  the grace period, ``time.monotonic()`` time); the hook is cancelled there and what is left
  of the grace period (the kubelet grants at least 2 s) goes to ``stop_container``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from pinnace.kubelet.probes import (
    KUBE_VERSION,
    MAX_OUTPUT,
    ProbeError,
    http_get,
    http_headers,
    http_url,
)
from pinnace.kubelet.runtime.base import ContainerRuntime

log = logging.getLogger(__name__)

HOOK_USER_AGENT = f"kube-lifecycle/{KUBE_VERSION}"
HookName = Literal["postStart", "preStop"]

# (event reason, event message) per hook, as kuberuntime_container.go records them.
HOOK_FAILURE_EVENTS: dict[HookName, tuple[str, str]] = {
    "postStart": ("FailedPostStartHook", "PostStartHook failed"),
    "preStop": ("FailedPreStopHook", "PreStopHook failed"),
}
# The kubelet does not bound a postStart exec: timeout 0 means none (CRI ExecSync, the process runtime).
NO_EXEC_TIMEOUT = 0.0
# The least the kubelet leaves for SIGTERM→SIGKILL after a preStop hook used up the grace period.
MIN_GRACE_AFTER_PRESTOP = 2.0


@dataclass(frozen=True)
class HookResult:
    ok: bool
    message: str = ""  # the detailed failure (logs, the killed container's status message)
    timed_out: bool = False  # cut off at the deadline
    event_reason: str = ""  # set when not ok: "FailedPostStartHook" / "FailedPreStopHook"
    event_message: str = ""  # "PostStartHook failed" / "PreStopHook failed"


def format_pod(name: str, namespace: str, uid: str) -> str:
    """A pod as kubelet messages name it (``format.Pod``): name_namespace(uid)."""
    return f"{name}_{namespace}({uid})"


def remaining_grace(deadline: float, now: float | None = None) -> float:
    """The grace period left for stopping the container after preStop (at least 2 s)."""
    now = time.monotonic() if now is None else now
    return max(MIN_GRACE_AFTER_PRESTOP, deadline - now)


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # close to Go's %q


async def run_hook(handler: Mapping[str, Any], *, hook: HookName, runtime: ContainerRuntime, container_id: str,
                   container: Mapping[str, Any], pod: str, pod_ip: str | None, deadline: float | None = None,
                   sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> HookResult:
    """Run a postStart/preStop handler (a v1.LifecycleHandler dict) for a container.

    ``pod`` names the pod in messages (:func:`format_pod`); ``deadline`` (``time.monotonic()``
    time) cuts the hook off (preStop: the end of the grace period); a deadline already passed
    skips the hook.  Never raises for a failing handler: see :class:`HookResult`.
    """
    name = str(container.get("name", ""))
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        return _failed(hook, f"{hook} hook for Container {_q(name)} in Pod {_q(pod)} not run: "
                             "grace period exhausted", timed_out=True)
    if (action := handler.get("exec")) is not None:
        return await _exec(hook, action, runtime, container_id, name, pod, remaining)
    if (action := handler.get("httpGet")) is not None:
        return await _http(hook, action, container, name, pod, pod_ip, remaining)
    if (action := handler.get("sleep")) is not None:
        return await _sleep(hook, action, name, pod, remaining, sleep)
    return _failed(hook, f"Cannot run handler: invalid handler: {dict(handler)}")


def _failed(hook: HookName, message: str, *, timed_out: bool = False) -> HookResult:
    reason, event = HOOK_FAILURE_EVENTS[hook]
    log.info("%s hook failed: %s", hook, message)
    return HookResult(False, message, timed_out, reason, event)


async def _exec(hook: HookName, action: Mapping[str, Any], runtime: ContainerRuntime, container_id: str,
                name: str, pod: str, remaining: float | None) -> HookResult:
    cmd = [str(c) for c in action.get("command") or []]
    joined = " ".join(cmd)

    def failed(error: str, output: str = "", timed_out: bool = False) -> HookResult:
        return _failed(hook, f"Exec lifecycle hook ([{joined}]) for Container {_q(name)} in Pod {_q(pod)} failed"
                             f" - error: {error}, message: {_q(output)}", timed_out=timed_out)

    if not cmd:
        return failed("no command")
    try:
        async with asyncio.timeout(remaining):
            result = await runtime.exec_sync(container_id, cmd,
                                             NO_EXEC_TIMEOUT if remaining is None else remaining)
    except TimeoutError:
        return failed(f'command "{joined}" timed out', timed_out=True)
    except Exception as e:  # the runtime could not exec (container gone, ...)
        return failed(str(e) or type(e).__name__)
    if result.exit_code != 0:
        output = (result.stdout + result.stderr)[:MAX_OUTPUT].decode(errors="replace")
        stderr = result.stderr[:MAX_OUTPUT].decode(errors="replace")
        return failed(f"command '{joined}' exited with {result.exit_code}: {stderr}", output)
    return HookResult(True)


async def _http(hook: HookName, action: Mapping[str, Any], container: Mapping[str, Any], name: str, pod: str,
                pod_ip: str | None, remaining: float | None) -> HookResult:
    path = str(action.get("path") or "")

    def failed(error: str, timed_out: bool = False) -> HookResult:
        return _failed(hook, f"HTTP lifecycle hook ({path}) for Container {_q(name)} in Pod {_q(pod)} failed"
                             f" - error: {error}", timed_out=timed_out)

    if not action.get("host") and not pod_ip:
        return failed("failed to find networking container: the pod has no IP address")
    try:
        url = http_url(action, pod_ip=pod_ip, container_ports=container.get("ports"), numeric_strings_first=True)
    except ProbeError as e:
        return failed(str(e))
    headers = http_headers(action, HOOK_USER_AGENT)
    try:
        async with asyncio.timeout(remaining):
            try:
                await http_get(url, headers)  # the status code does not matter (handlers.go)
            except aiohttp.ClientSSLError as e:
                if url.scheme != "https" or "WRONG_VERSION_NUMBER" not in str(e):
                    raise
                # An HTTPS hook answered by plain HTTP: the kubelet retries with HTTP
                # (without Authorization) and reports the fallback only in a warning event.
                log.warning("HTTPS %s hook at %s got an HTTP response; retrying with HTTP", hook, url.host)
                plain = headers.copy()
                plain.popall("Authorization", None)
                await http_get(url.with_scheme("http"), plain)
    except TimeoutError:
        return failed(f'Get "{url}": context deadline exceeded', timed_out=True)
    except (aiohttp.ClientError, OSError, ProbeError) as e:
        return failed(f'Get "{url}": {e}')
    return HookResult(True)


async def _sleep(hook: HookName, action: Mapping[str, Any], name: str, pod: str, remaining: float | None,
                 sleep: Callable[[float], Awaitable[Any]]) -> HookResult:
    seconds = int(action.get("seconds") or 0)
    try:
        async with asyncio.timeout(remaining):
            await sleep(seconds)
    except TimeoutError:
        # The kubelet's words for a sleep cut short by the container's termination.
        return _failed(hook, f"Sleep lifecycle hook ({seconds}) for Container {_q(name)} in Pod {_q(pod)} failed"
                             " - error: container terminated before sleep hook finished", timed_out=True)
    return HookResult(True)


__all__ = ["HOOK_FAILURE_EVENTS", "HOOK_USER_AGENT", "MIN_GRACE_AFTER_PRESTOP", "HookName", "HookResult",
           "format_pod", "remaining_grace", "run_hook"]
