"""``source-klaviyo-segments <args>`` in a process of its own, without paying for the CDK's import
each time.

Importing the connector (the CDK, its protocol serializers, pydantic models) costs about 1.3 s of
CPU, more than most commands then spend; the integration tests run a few hundred commands on a
two-core machine. So each test worker starts one *fork server* that imports
``source_klaviyo_segments.run`` once, and every command is a fresh process forked from it.

A forked command is what the interpreter makes of the console script: its own pid, argv, working
directory, environment (the caller's, as ``subprocess`` passes it), stdout and stderr (pipes),
the console script's ``run()``, an uncaught exception handed to ``sys.excepthook`` (the CDK's,
which prints the error as an Airbyte trace) and exit status 1, ``SystemExit`` codes as given, and
SIGKILL as a kill. Nothing of one command outlives it: a command never sees another's state.

What a fork cannot show is the installed script itself (its file, its interpreter, ``--help``);
the tests of those run it as a plain subprocess (``conftest.connector_command``), and so does
PyAirbyte. The manifest-only runtime is a plain subprocess too: it must not have the package.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TextIO

# One fork server per test worker, started on the first command, with the connector imported.
_FORK_SERVER = multiprocessing.get_context("forkserver")
_FORK_SERVER.set_forkserver_preload(["source_klaviyo_segments.run"])


def _as_the_console_script(argv: list[str], cwd: str, env: dict[str, str], stdout: Connection, stderr: Connection) -> None:
    """Runs in the forked process: ``sys.exit(run())`` as the console script does, in ``cwd`` with
    ``env``, writing to the two pipes, with an uncaught exception handled as the interpreter does."""
    from source_klaviyo_segments.run import run  # already imported by the fork server

    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.stdout.flush()
    sys.stderr.flush()
    for pipe, fd in ((stdout, 1), (stderr, 2)):
        os.dup2(pipe.fileno(), fd)
        pipe.close()
    sys.argv = argv
    try:
        run()
    except SystemExit:
        raise  # multiprocessing exits with its code, as the interpreter would
    except BaseException:
        sys.excepthook(*sys.exc_info())
        raise SystemExit(1) from None


class ConnectorProcess:
    """A running ``source-klaviyo-segments <args>``, like ``subprocess.Popen(..., stdout=PIPE,
    stderr=PIPE, text=True)``: ``stdout`` yields its lines as it writes them; ``stderr`` is
    collected in the background and complete once it has exited. A process still running
    ``timeout`` seconds after its start is killed, and ``timed_out`` says so: a hung command fails
    its test instead of hanging the suite."""

    def __init__(self, args: Sequence[str], cwd: Path | str, timeout: float = 300) -> None:
        self.args = ["source-klaviyo-segments", *args]
        stdout_reader, stdout_writer = _FORK_SERVER.Pipe(duplex=False)
        stderr_reader, stderr_writer = _FORK_SERVER.Pipe(duplex=False)
        self._process = _FORK_SERVER.Process(
            target=_as_the_console_script, args=(self.args, str(cwd), dict(os.environ), stdout_writer, stderr_writer)
        )
        self._process.start()
        stdout_writer.close()  # the child holds the only write ends: EOF when it exits
        stderr_writer.close()
        self._late = threading.Event()
        self._watchdog = threading.Timer(timeout, self._kill_when_late)
        self._watchdog.daemon = True
        self._watchdog.start()
        self.stdout: TextIO = open(os.dup(stdout_reader.fileno()))  # noqa: SIM115 (closed by run_command or the caller)
        stdout_reader.close()
        self._stderr_file: TextIO = open(os.dup(stderr_reader.fileno()))  # noqa: SIM115
        stderr_reader.close()
        self._stderr_text = ""
        self._stderr_drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_drain.start()

    def _drain_stderr(self) -> None:
        with self._stderr_file:
            self._stderr_text = self._stderr_file.read()

    @property
    def stderr(self) -> str:
        """What it printed on stderr; complete once ``wait`` has returned."""
        return self._stderr_text

    def kill(self) -> None:
        """SIGKILL, as ``Popen.kill``: no chance to flush or clean up."""
        self._process.kill()

    def _kill_when_late(self) -> None:
        self._late.set()
        self.kill()

    @property
    def timed_out(self) -> bool:
        """Whether it was killed for running past ``timeout``."""
        return self._late.is_set()

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status (minus the signal's number if killed), as ``Popen.wait``."""
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self._watchdog.cancel()
        self._stderr_drain.join()
        return self._process.exitcode


def run_command(args: Sequence[str], cwd: Path | str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(["source-klaviyo-segments", *args], capture_output=True, text=True,
    cwd=cwd, timeout=timeout)``, forked (the module's docstring says how). A command still running
    after ``timeout`` seconds is killed and raises ``subprocess.TimeoutExpired``."""
    process = ConnectorProcess(args, cwd, timeout)
    with process.stdout:
        stdout = process.stdout.read()
    returncode = process.wait()
    if process.timed_out:
        raise subprocess.TimeoutExpired(process.args, timeout, stdout, process.stderr)
    return subprocess.CompletedProcess(process.args, returncode, stdout, process.stderr)
