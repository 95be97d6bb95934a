"""What the throwaway servers of the tests share: stopping the process a test started.

    stop_process(self.process, grace=30)
"""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any] | None, grace: float,
                 killed_timeout: float | None = None) -> None:
    """Stop `process` (one this test started): SIGTERM, then SIGKILL after `grace` seconds.

    Parameters
    ----------
    process : subprocess.Popen or None
        The process to stop; None or an exited process is left alone.
    grace : float
        Seconds it has to exit after SIGTERM.
    killed_timeout : float or None, default None
        Seconds to wait for it after SIGKILL (None: until it exits).
    """
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(killed_timeout)
