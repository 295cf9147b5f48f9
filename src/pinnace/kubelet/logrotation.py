"""Container log rotation, as the kubelet's container log manager does it.

Every ``period`` (10 s) each *running* container's CRI log (``<attempt>.log``) is
checked; one of ``max_size`` bytes or more (``--container-log-max-size``, default
10Mi) is rotated:

1. the leftovers of an earlier rotation cut short go (``*.tmp``, and plain files whose
   ``.gz`` already exists);
2. the oldest rotated files go until at most ``max_files - 2`` remain
   (``--container-log-max-files``, default 5: with the file being rotated and the new
   one, at most ``max_files`` files);
3. the rotated files still in plain text are compressed (``N.log.<stamp>.gz``);
4. ``N.log`` is renamed ``N.log.<YYYYMMDD-hhmmss>`` (local time) and the runtime is asked
   to reopen the container's log (``reopen_container_log``: the runc shim, or the
   process runtime's pumps, write a new ``N.log``).  If that fails the rename is undone,
   to be tried again next period.

So the newest rotated file stays uncompressed until the next rotation: a reader that
had it open (``kubectl logs -f``) finishes it, and ``kubectl logs`` reads it before the
current file (:func:`pinnace.kubelet.crilog.log_files`).  A log that is missing (deleted
by hand) is reopened too.  A negative ``max_size`` disables rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .crilog import COMPRESSED_SUFFIX, TMP_SUFFIX

if TYPE_CHECKING:
    from .kubelet import Kubelet

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = "10Mi"
DEFAULT_MAX_FILES = 5
MONITOR_PERIOD = 10.0  # the kubelet's containerLogMonitorInterval
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"  # Go's "20060102-150405", as the kubelet names rotated logs

# (container id, its current log file) for every running container.
LogSource = Callable[[], Iterable[tuple[str, Path]]]


_SIMPLE_SIZE = re.compile(r"([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?")
_SIZE_UNITS = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
               "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_max_size(value: str | int) -> int:
    """``--container-log-max-size``: a quantity ("10Mi", "500Ki", "1G", "1048576") in bytes."""
    simple = _SIMPLE_SIZE.fullmatch(value) if isinstance(value, str) else None
    if simple is not None:  # the usual forms, without loading the full quantity parser (a big module)
        return int(simple.group(1)) * _SIZE_UNITS[simple.group(2)]
    from ..api.validation import parse_quantity

    size = parse_quantity(value)
    if size != size.to_integral_value():
        raise ValueError(f"container log max size {value!r} is not a whole number of bytes")
    return int(size)


class ContainerLogManager:
    """Rotates the logs of the running containers ``containers`` lists (see the module
    docstring); ``runtime`` reopens them."""

    def __init__(self, runtime: Any, containers: LogSource, *, max_size: str | int = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES, period: float = MONITOR_PERIOD,
                 clock: Callable[[], float] = time.time):
        if max_files <= 1:
            raise ValueError(f"invalid container log max files {max_files}: must be > 1")
        self.runtime = runtime
        self.containers = containers
        self.max_size = parse_max_size(max_size)
        self.max_files = max_files
        self.period = period
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.max_size >= 0

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="container-log-rotation")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.rotate_logs()
            except Exception:
                log.exception("container log rotation failed")

    async def rotate_logs(self) -> None:
        """One pass over the running containers."""
        for container_id, path in list(self.containers()):
            try:
                await self.rotate_container(container_id, path)
            except Exception as e:  # one container's trouble must not stop the others' rotation
                log.warning("rotating the log of container %s (%s): %s", container_id[:12], path, e)

    async def rotate_container(self, container_id: str, path: Path) -> bool:
        """Rotate one container's log if it reached the maximum size; whether it was rotated."""
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            # Gone (removed by hand): the container would write to a deleted file forever.
            await self.runtime.reopen_container_log(container_id)
            size = os.stat(path).st_size
        if size < self.max_size:
            return False
        rotated = await asyncio.to_thread(self._rename_away, path)
        if rotated is None:
            return False
        try:
            await self.runtime.reopen_container_log(container_id)
        except BaseException:
            # Put it back to try again next period (the container still writes to it).
            with contextlib.suppress(OSError):
                os.rename(rotated, path)
            raise
        log.debug("rotated the log of container %s to %s", container_id[:12], rotated.name)
        return True

    def _rename_away(self, path: Path) -> Path | None:
        """Make room, then rename ``path`` to its timestamped name (None: that name is taken,
        rotated within this second already; next period).  In a thread: compression reads
        megabytes."""
        self._make_room(path)
        rotated = path.with_name(f"{path.name}.{time.strftime(TIMESTAMP_FORMAT, time.localtime(self.clock()))}")
        if os.path.lexists(rotated):
            return None
        os.rename(path, rotated)
        return rotated

    def _make_room(self, path: Path) -> None:
        """Before rotating ``path``: clean up, keep at most max_files - 2 rotated files,
        compress the plain ones."""
        prefix = path.name + "."
        names = sorted(e.name for e in os.scandir(path.parent) if e.name.startswith(prefix))
        in_use = []
        for name in names:
            unused = name.endswith(TMP_SUFFIX) or (
                not name.endswith(COMPRESSED_SUFFIX) and name + COMPRESSED_SUFFIX in names)
            if unused:
                (path.parent / name).unlink(missing_ok=True)
            else:
                in_use.append(name)
        # Oldest first (the timestamps sort), so an ongoing `kubectl logs` loses the least.
        keep = max(self.max_files - 2, 0)
        excess = len(in_use) - keep
        for name in in_use[:max(excess, 0)]:
            (path.parent / name).unlink(missing_ok=True)
        for name in in_use[max(excess, 0):]:
            if not name.endswith(COMPRESSED_SUFFIX):
                _compress(path.parent / name)


def _compress(path: Path) -> None:
    """``path`` -> ``path.gz`` (through ``path.gz.tmp``), then the original goes."""
    tmp = path.with_name(path.name + COMPRESSED_SUFFIX + TMP_SUFFIX)
    try:
        with open(path, "rb") as src, open(tmp, "wb") as raw:
            os.fchmod(raw.fileno(), os.fstat(src.fileno()).st_mode & 0o777)
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                shutil.copyfileobj(src, gz, 1 << 20)
        os.rename(tmp, path.with_name(path.name + COMPRESSED_SUFFIX))
    finally:
        tmp.unlink(missing_ok=True)
    path.unlink()


def kubelet_log_source(kubelet: Kubelet) -> LogSource:
    """The running containers of the kubelet's pod workers, with their current log files."""
    def running() -> list[tuple[str, Path]]:
        out = []
        for worker in list(kubelet.workers.values()):
            for rec in worker.records:
                if rec.running and rec.current is not None:
                    out.append((rec.current.id, worker.log_path(rec.name, rec.restart_count)))
        return out

    return running


__all__ = ["DEFAULT_MAX_FILES", "DEFAULT_MAX_SIZE", "MONITOR_PERIOD", "TIMESTAMP_FORMAT", "ContainerLogManager",
           "LogSource", "kubelet_log_source", "parse_max_size"]
