"""Stopping a training run between two steps, so that what it trained is kept.

A signal handler or a watchdog thread cannot stop a run safely where it is: it may be halfway through an optimizer
step (some parameters updated, others not). Instead it calls :meth:`StopRequest.ask`; the training loop
(:func:`physopt.bench.train.train_run`) polls :data:`STOP` once per step, and when asked it saves its checkpoint
(where the run has one) and raises :class:`Stopped`. The same command run again continues from that checkpoint.

Who asks:

* a worker of ``--executor local:N`` (:func:`guard_worker`), when it receives SIGTERM (``stop_pool`` after Ctrl-C,
  ``kill``) or when its submitting process is gone (``kill -9``, a crash): a worker never trains on alone;
* the CLI (:func:`on_sigterm`), when ``physopt`` itself receives SIGTERM (``kill``, a scheduler's time limit) while
  it trains a run in this process.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

#: seconds a stopped worker waits for its run to reach the end of its current step before it exits regardless
GRACE_S = 300.0
#: seconds between a worker's checks that its submitting process is alive
POLL_S = 1.0


class Stopped(KeyboardInterrupt):
    """A run stopped between two steps because its process was asked to (SIGTERM, or its submitting process
    died). Its checkpoint, where it has one, holds every finished step: the same command continues the run. A
    ``KeyboardInterrupt``, so that everything that handles Ctrl-C (summaries of the finished runs, exit code 130)
    handles it too."""


class StopRequest:
    """This process's request to stop training: set from a signal handler or a thread, polled by the training loop.

    ``training`` counts the runs training in this process now; ``handled`` is set once a run has answered the
    request (saved its checkpoint, where it has one, and raised :class:`Stopped`)."""

    def __init__(self) -> None:
        self._asked = threading.Event()
        self.handled = threading.Event()
        self.training = 0

    def ask(self) -> None:
        self._asked.set()

    @property
    def asked(self) -> bool:
        return self._asked.is_set()

    def clear(self) -> None:
        """Forget a request (tests, or a process that goes on after answering one)."""
        self._asked.clear()
        self.handled.clear()


STOP = StopRequest()


def on_sigterm(signum: int, frame: Any) -> None:
    """The CLI's SIGTERM handler: a run training in this process stops at its next step boundary (keeping its
    checkpoint); otherwise (nothing training, or a submitting process waiting for its workers) the command stops at
    once, as after Ctrl-C."""
    if STOP.training:
        STOP.ask()
    else:
        raise Stopped(f"terminated (signal {signum})")


def guard_worker() -> None:
    """Set up a worker process of a local pool (call it first in the pool's initializer): Ctrl-C is left to the
    submitting process (which then terminates the workers), SIGTERM stops the worker's run at its next step boundary
    with its checkpoint saved, and so does the death of the submitting process, which a watchdog thread notices
    within :data:`POLL_S` seconds (a process pool's workers otherwise train on alone until their run ends)."""
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: _stop_worker())
    threading.Thread(target=_watch_parent, args=(parent,), name="physopt-watch-parent", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:           # an orphan is adopted by init or a subreaper: its parent id changes
        time.sleep(POLL_S)
    _stop_worker()


def _stop_worker() -> None:
    """Exit now when no run trains here; else ask the run to stop and exit once it has (or after GRACE_S)."""
    if not STOP.training:
        os._exit(1)
    STOP.ask()
    threading.Thread(target=_exit_when_handled, name="physopt-stop", daemon=True).start()


def _exit_when_handled() -> None:
    STOP.handled.wait(GRACE_S)
    os._exit(1)
