"""Executing one stage notebook with papermill, on the interpreter that runs the runner, and saying how it ended.

The kernel is ipykernel on ``sys.executable`` (``RunnerKernelManager``), whatever kernel specs the user has
installed: a user-level ``python3`` spec would otherwise run another interpreter, with other packages, silently.

Every way an execution can end is told apart (``Ending``): a cell raised (``failed``), the kernel died (``killed``:
SIGKILL, the out-of-memory killer, a crash), a cell ran past ``timeout`` (``timed out``), the runner was stopped
(``interrupted``: Ctrl-C or SIGTERM, e.g. a scheduler's time limit), or the runner could not execute it at all
(``error``: the kernel did not start, ...). papermill writes the executed notebook as far as it got in every case.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from collections.abc import Callable, Iterator

from ipykernel.kernelspec import get_kernel_dict
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec
from traitlets import default

KERNEL_NAME = "python3"  # written into executed notebooks so JupyterLab opens them; never looked up
KERNEL_ENV = {  # what a runner-executed kernel runs with, beside the runner's own environment
    "TQDM_DISABLE": "1",  # no progress bars written into executed notebooks: the runner shows each cell's progress
    # tqdm.auto in a kernel without ipywidgets warns that it cannot draw widget bars; with bars off it has none to draw
    "PYTHONWARNINGS": "ignore:IProgress not found",
}


class RunnerKernelManager(AsyncKernelManager):
    """A kernel manager whose spec is always ipykernel's own for ``sys.executable``; it keeps the processes it
    started so their end can be told (exit signal) and what survives an interrupted run can be stopped."""

    launched: list = []  # replaced per execution by ``_manager_for``
    on_start: Callable[[int], None] | None = None

    @default("transport_encryption")
    def _encrypted(self) -> str:
        """CurveZMQ keys for the kernel's sockets (ipykernel declares support): the kernel then starts without its
        warning that it runs over TCP in plain text."""
        return "auto"

    @property
    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(resource_dir="", env=KERNEL_ENV, **get_kernel_dict())

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        """jupyter_client's documented override point for launching the kernel process."""
        await super()._async_launch_kernel(kernel_cmd, **kw)
        process = self.provisioner.process
        self.launched.append(process)
        if self.on_start is not None:
            self.on_start(process.pid)


def _manager_for(on_start: Callable[[int], None] | None) -> type[RunnerKernelManager]:
    return type(
        "RunnerKernelManager",
        (RunnerKernelManager,),
        {"launched": [], "on_start": staticmethod(on_start) if on_start else None},
    )


@dataclass
class Ending:
    """How an execution that did not complete ended."""

    status: str  # failed, killed, timed out, interrupted, error
    message: str  # one line: what happened
    cell: int | None = None  # the execution count of the failing cell, when one failed


def run_notebook(
    notebook: Path,
    output: Path,
    parameters: dict,
    timeout: float | None = None,
    on_kernel_start: Callable[[int], None] | None = None,
) -> Ending | None:
    """Execute ``notebook`` into ``output`` (the working directory is the notebook's folder, as in JupyterLab).
    Returns None when every cell ran, else how it ended; a kernel still alive then is stopped. An interrupt is
    returned too (``interrupted``): the caller records it, then stops."""
    import papermill

    manager = _manager_for(on_kernel_start)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            kernel_name=KERNEL_NAME,
            kernel_manager_class=manager,
            cwd=str(notebook.parent),
            parameters=parameters,
            execution_timeout=timeout,
            progress_bar=True,
            log_output=True,
            stdout_file=None,
        )
    except BaseException as exc:  # every way of ending is recorded, KeyboardInterrupt included
        for process in manager.launched:
            _stop(process)
        return ending(exc, [process.poll() for process in manager.launched])
    return None


def _stop(process) -> None:
    """Stop a kernel and everything it started (jupyter_client starts it in a session of its own)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            process.wait(timeout=10)


def ending(exc: BaseException, exit_codes: list[int | None] = ()) -> Ending:
    """How an execution ended, from what it raised and the kernels' exit codes."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    if isinstance(exc, papermill.PapermillExecutionError):
        return Ending("failed", f"{exc.ename}: {exc.evalue}", exc.exec_count)
    if isinstance(exc, DeadKernelError):
        signals = [signal.Signals(-code).name for code in exit_codes if code is not None and code < 0]
        how = f"was killed by {signals[-1]}" if signals else "died"
        hint = " (the out-of-memory killer, or kill -9)" if signals[-1:] == ["SIGKILL"] else ""
        return Ending("killed", f"the kernel {how}{hint}")
    if isinstance(exc, CellTimeoutError):
        return Ending("timed out", f"a cell ran past the timeout: {str(exc).splitlines()[0]}")
    if isinstance(exc, KeyboardInterrupt):
        return Ending("interrupted", f"the runner was stopped ({exc.args[0] if exc.args else 'Ctrl-C'})")
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return Ending("error", f"{type(exc).__name__}: {first_line}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM (a scheduler's time limit, ``kill``) stop the runner the way Ctrl-C does, so the record says how
    the run ended instead of the process vanishing. Only the main thread can handle signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block has run, then stop as they asked: a few renames and a record that
    must happen together (a completed stage swapped in and recorded) are never split by them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    handlers = {
        signum: signal.signal(signum, lambda signum, frame: received.append(signum))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if received:
        raise KeyboardInterrupt(signal.Signals(received[0]).name if received[0] != signal.SIGINT else "Ctrl-C")


# ----------------------------------------------------------------------------------------------- what the runner says
def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def say(stage_id: str, message: str) -> None:
    print(f"[{stage_id}] {message}", flush=True)
