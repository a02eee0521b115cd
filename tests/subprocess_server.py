"""A loopback server started as a child process (as Scrapy's own tests do), port 0, address on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parents[1]


class SubprocessServer:
    """Context manager: run ``python -m <module>`` and read its base URL from the first stdout line."""

    module: str = ""

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen([sys.executable, "-m", self.module], cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://"):
            self.proc.kill()
            raise RuntimeError(f"{self.module} did not start")
        return self

    def url(self, path: str) -> str:
        return self.base_url + path

    def control(self, path: str) -> Any:
        """GET a control endpoint of the mock and decode its JSON answer."""
        with urllib.request.urlopen(self.base_url + path, timeout=5) as response:
            return json.loads(response.read())

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
