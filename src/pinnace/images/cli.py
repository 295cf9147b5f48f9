"""``pinnace image import|ls|rm|pull``: the command bodies (the parser lives in pinnace.cli)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from .errors import ImageError
from .service import ImageService
from .store import LocalImage


def human_size(size: float) -> str:
    """Like crictl/docker (go-units HumanSize): decimal units, 4 significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{units[i]}"


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:13]


class _ProgressPrinter:
    """Bytes per blob on stderr: when it starts, every few seconds while downloading, when done."""

    def __init__(self, interval: float = 2.0):
        self.interval = interval
        self.last: dict[str, float] = {}

    def __call__(self, event: str, digest: str, done: int, total: int) -> None:
        now = time.monotonic()
        short = short_id(digest)
        size = human_size(total) if total >= 0 else "?"
        if event == "exists":
            print(f"{short}: already exists", file=sys.stderr)
        elif event == "done":
            print(f"{short}: done ({human_size(done)})", file=sys.stderr)
        elif digest not in self.last or now - self.last[digest] >= self.interval:
            self.last[digest] = now
            print(f"{short}: {human_size(done)} / {size}", file=sys.stderr)


def _row(img: LocalImage) -> dict[str, object]:
    return {"ref": img.ref, "id": img.id, "digest": img.digest, "manifestDigest": img.manifest_digest,
            "repoDigest": img.repo_digest, "size": img.size, "created": img.created}


async def _run(args: argparse.Namespace, data_dir: Path) -> int:
    async with ImageService(data_dir, insecure_registries=getattr(args, "insecure_registry", None) or []) as svc:
        action = args.image_command
        if action == "import":
            for ref in await svc.import_archive(args.path, args.name):
                print(f"imported {ref}")
        elif action == "pull":
            img = await svc.pull(args.ref, progress=_ProgressPrinter())
            print(f"{img.ref} {img.digest}")
        elif action == "rm":
            for ref in await svc.remove(args.ref):
                print(f"deleted {ref}")
        elif action == "ls":
            images = await svc.list()
            if args.output == "json":
                print(json.dumps([_row(i) for i in images], indent=2))
            else:
                rows = [("REF", "IMAGE ID", "SIZE")] + [(i.ref, short_id(i.id), human_size(i.size)) for i in images]
                widths = [max(len(r[c]) for r in rows) for c in range(2)]
                for r in rows:
                    print(f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   {r[2]}")
        else:
            print("usage: pinnace image {import,ls,rm,pull} ...", file=sys.stderr)
            return 2
    return 0


def run(args: argparse.Namespace, data_dir: Path) -> int:
    try:
        return asyncio.run(_run(args, data_dir))
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
