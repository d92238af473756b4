"""Stopping on SIGTERM and SIGINT as an exception, so that a command interrupted by a scheduler,
``kill`` or Ctrl-C unwinds: temporary files are removed, state is recorded, and the command exits
with the signal's conventional status (128 + its number) after one line.

Sections that write files which must agree with each other (a checkpoint and the state that
names it) run inside :func:`deferred`: a signal arriving there takes effect at its end.
"""

import signal
import threading
from contextlib import contextmanager

from tfvae.errors import render

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A stop signal arrived. A ``BaseException``, as ``KeyboardInterrupt`` is, so that no
    ``except Exception`` on the way swallows it."""

    def __init__(self, signum, next_step=None):
        self.signum = int(signum)
        self.signal_name = signal.Signals(self.signum).name
        super().__init__(f"interrupted by {self.signal_name}"
                         + (f"; {next_step}" if next_step else ""))

    def __str__(self):
        return render(super().__str__())

    @property
    def exit_status(self):
        return 128 + self.signum


class _State(threading.local):
    held = 0
    pending = None


_state = _State()


def _handler(signum, frame):
    if _state.held:
        _state.pending = signum
        return
    raise Interrupted(signum)


@contextmanager
def stop_on_signals(signums=STOP_SIGNALS):
    """Turn ``signums`` into :class:`Interrupted` while the block runs (in the main thread only:
    Python delivers signals there); the previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in signums}
    for signum in signums:
        signal.signal(signum, _handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def deferred():
    """Hold stop signals until the block ends, then raise :class:`Interrupted` for the first."""
    _state.held += 1
    try:
        yield
    finally:
        _state.held -= 1
        if not _state.held and _state.pending is not None:
            signum, _state.pending = _state.pending, None
            raise Interrupted(signum)
