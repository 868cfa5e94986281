"""Stopping a run by signal: Ctrl-C (SIGINT), a scheduler's stop (SIGTERM: Slurm at a time limit, Kubernetes at
eviction) and a closed terminal (SIGHUP) all end a measuring run the same way, and none loses what was measured.

:class:`StopOnSignal` turns the first such signal into :class:`Stopped` (a ``KeyboardInterrupt``, so the runner
ends the suite there and builds a partial profile marked interrupted) and notes, but never raises, every later
one: a second signal while the profile is being saved must not lose the file. Once measuring is over
(:func:`hold`, called by the runner), a first signal is noted only, too. The command exits ``128 + N`` for
signal N, as shells report it (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).

A signal that was ignored when npucheck started (``nohup`` ignores SIGHUP; a shell's background job, SIGINT)
stays ignored. Fleet measuring processes install their own handlers (``npucheck.measure.fleet.orphaned_with``).
No torch here: the command line imports this before the measuring half.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = [
    "STOPPING",
    "Stopped",
    "StopOnSignal",
    "deferred",
    "exit_code",
    "hold",
    "interrupted_warning",
    "signal_name",
    "signum_of",
]

STOPPING: tuple[int, ...] = tuple(
    int(getattr(signal, name)) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals that stop a run and save what it measured (SIGHUP does not exist on Windows)."""

_active: StopOnSignal | None = None


class Stopped(KeyboardInterrupt):
    """A stopping signal arrived: handled exactly as Ctrl-C, with the signal's number kept."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on; ``signal N`` for a number this platform does not name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def signum_of(error: BaseException | None) -> int:
    """The signal that ``error`` (a :class:`Stopped`) stands for; SIGINT for a plain ``KeyboardInterrupt``."""
    signum = getattr(error, "signum", None)
    return signum if isinstance(signum, int) else int(signal.SIGINT)


def exit_code(signum: int | None) -> int:
    """``128 + N`` for the signal N that stopped the run, as shells report a signal's death (130 for None:
    a ``KeyboardInterrupt`` that carries no signal is Ctrl-C's)."""
    return 128 + (signum if signum is not None else int(signal.SIGINT))


def interrupted_warning(error: BaseException) -> str:
    """The profile's warning for a run stopped by ``error``: it names the signal when one is known."""
    signum = getattr(error, "signum", None)
    by = f" by {signal_name(signum)}" if isinstance(signum, int) else ""
    return f"interrupted{by}: the run was stopped before the suite finished; the cases not measured are missing"


def hold() -> None:
    """Measuring is over: from now on a stopping signal is noted, never raised, so that saving finishes. No-op
    when no :class:`StopOnSignal` is active (a fleet measuring process, a library caller)."""
    if _active is not None:
        _active.holding = True


@contextmanager
def deferred() -> Iterator[None]:
    """A block a stopping signal must not cut short (restoring a device's power limit): a first signal that arrives
    inside it is noted, and raised as :class:`Stopped` once the block has finished. No-op when no
    :class:`StopOnSignal` is active, or when it already holds (measuring is over, or a signal was already raised)."""
    active = _active
    if active is None or active.holding or active.received is not None:
        yield
        return
    active.holding = True
    try:
        yield
    finally:
        active.holding = False
    if active.received is not None:
        raise Stopped(active.received)


class StopOnSignal:
    """Context manager for one ``npucheck run``: installs the handlers and restores the previous ones on exit,
    unless a signal arrived: then the process is ending, and later signals are ignored until it exits.

    ``received``: the first stopping signal's number, or None. Outside the main thread (where handlers cannot be
    installed) it does nothing.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.later: list[int] = []
        """Signals noted and ignored after the first one (or after :func:`hold`)."""
        self.holding = False
        self._previous: dict[int, Any] = {}
        self._outer: StopOnSignal | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None or self.holding:
            if self.received is None:
                self.received = signum
            else:
                self.later.append(signum)
            return
        self.received = signum
        raise Stopped(signum)

    def __enter__(self) -> StopOnSignal:
        global _active
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in STOPPING:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue  # ignored by whoever started us (nohup, a background job): theirs to decide
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        self._outer, _active = _active, self
        return self

    def __exit__(self, *exc: Any) -> None:
        global _active
        if self.received is not None:
            # The process is ending with the first signal's code: a later one must not kill it first. SIG_IGN, not a
            # Python handler: the interpreter resets its own handlers to the default while it shuts down.
            for signum in self._previous:
                signal.signal(signum, signal.SIG_IGN)
            self.holding = True
            return
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        if _active is self:
            _active = self._outer
