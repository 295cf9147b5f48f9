"""Drive the real kubectl binary (and its pinned versions) against a test server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


def kubectl_versions() -> dict[str, str]:
    """{"default": path, "1.27": path, ...} for the kubectl binaries on this machine."""
    found: dict[str, str] = {}
    default = shutil.which("kubectl")
    if default is None:
        return found
    found["default"] = default
    home = Path(os.path.realpath(default)).parent
    for p in sorted(home.glob("kubectl.1.*")):
        found[p.name.removeprefix("kubectl.")] = str(p)
    return found


@dataclass
class Kubectl:
    binary: str
    kubeconfig: Path

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.kubeconfig.parent / "kcache")}
        proc = subprocess.run([self.binary, *args], input=input, capture_output=True, text=True, env=env,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    def __call__(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.run(*args, "-o", "json").stdout)
