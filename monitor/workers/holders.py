"""Who holds a claim or lock, and whether that process is gone.

Holder ids are ``host:pid:random`` (:func:`monitor.lease.new_holder_id`). A holder on this machine whose process
no longer runs (``kill -9``, an out-of-memory kill) cannot finish what it claimed, so its claim is taken over at
once instead of at its expiry. A holder on another machine is judged by the expiry alone: its pid means nothing here.
"""

from __future__ import annotations

import os
import socket

from monitor.processes import pid_alive


def holder_gone(holder: str) -> bool:
    """True when ``holder`` names a process on this host that is no longer running (never for this process)."""
    host, _, rest = holder.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return pid != os.getpid() and not pid_alive(pid)
