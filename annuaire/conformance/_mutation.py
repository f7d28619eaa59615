"""The operator's ``--mutate-command``: a shell command that changes the deployment's data.

It runs through the shell, in its own process group, with the kit's environment, its output
kept in a temporary file (shown when it fails). The kit runs it once for each check that needs
data to change (pagination, then the feed), so it must change something each time it runs:
import the next delta of a series, for instance.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import IO

__all__ = ["Mutation", "run_mutation"]

#: A mutation still running after this long is stopped and fails the check.
TIMEOUT_S = 600.0
_TAIL = 600


@contextlib.contextmanager
def run_mutation(command: str) -> Iterator[Mutation]:
    """Start ``command``; on leaving the block, stop it if it is still running."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command,
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        mutation = Mutation(process, output)
        try:
            yield mutation
        finally:
            if process.poll() is None:
                mutation.stop()


class Mutation:
    """One run of the mutate command, started by :func:`run_mutation`."""

    def __init__(self, process: subprocess.Popen[bytes], output: IO[bytes]) -> None:
        self._process = process
        self._output = output
        self.started = time.monotonic()
        self.duration_s: float | None = None

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def wait(self, timeout_s: float = TIMEOUT_S) -> str | None:
        """Wait for the command; None when it succeeded, else why it failed (with its output)."""
        try:
            code = self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            return f"--mutate-command still running after {timeout_s:.0f} s: stopped"
        self.duration_s = time.monotonic() - self.started
        if code == 0:
            return None
        return f"--mutate-command exited with {code}: {self._tail()}"

    def stop(self) -> None:
        try:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()

    def _tail(self) -> str:
        self._output.seek(0)
        text = self._output.read().decode("utf-8", "replace").strip()
        return ("..." + text[-_TAIL:]) if len(text) > _TAIL else text or "(no output)"
