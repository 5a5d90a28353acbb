"""One photo's work shared among this process and forked copies of it."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

_R = TypeVar("_R")


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_all(jobs: Sequence[Callable[[], _R]], processes: int) -> list[_R]:
    """Every job's result, in order, the jobs shared among this process and forked copies of it.

    dlib's detector holds the GIL (measured: two threads take as long as one after the other), so
    one photo uses several cores only through processes; encoding batches are shared the same way,
    each process with one BLAS thread. A fork inherits the models, the image and the jobs
    (measured ~10 ms for fork, pipe and wait with a 24 MP image loaded); each process takes the
    next job from a shared counter until none is left, and a child sends its results back pickled.
    A job a child took but did not report (the child failed) is run again here, so a lost child
    costs time, never a result. No process pool library is used: a pool's workers would not
    share the models and the decoded photo, which a fork does for free.
    """
    count = min(processes, len(jobs))
    if count <= 1 or not hasattr(os, "fork"):
        return [job() for job in jobs]
    try:
        counter = multiprocessing.RawValue("i", 0)
        lock = multiprocessing.Lock()
    except OSError:  # no shared memory or semaphores here (/dev/shm): one process it is
        return [job() for job in jobs]

    def take() -> int:
        with lock:
            index: int = counter.value
            counter.value = index + 1
        return index

    def work() -> dict[int, _R]:
        done: dict[int, _R] = {}
        while (index := take()) < len(jobs):
            done[index] = jobs[index]()
        return done

    children: list[tuple[int, int]] = []
    results: dict[int, _R] = {}
    try:
        for _ in range(count - 1):
            read, write = os.pipe()
            try:
                with warnings.catch_warnings():
                    # Python 3.12+ warns that forking a process with threads (numpy's BLAS pool, a
                    # web server's) may deadlock the child; ours only runs dlib and pickle on
                    # inherited data.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pid = os.fork()
            except OSError:  # no more processes to be had: fewer helpers, same result
                os.close(read)
                os.close(write)
                break
            if pid == 0:  # the child: work, report, and leave without running any cleanup
                status = 1
                try:
                    os.close(read)
                    with os.fdopen(write, "wb") as report:
                        pickle.dump(work(), report, protocol=pickle.HIGHEST_PROTOCOL)
                    status = 0
                finally:
                    os._exit(status)
            os.close(write)
            children.append((pid, read))
        results = work()
    except BaseException:
        for pid, _read in children:
            os.kill(pid, signal.SIGKILL)
        raise
    finally:
        for pid, read in children:
            with os.fdopen(read, "rb") as answer:
                data = answer.read()
            os.waitpid(pid, 0)
            try:
                results.update(pickle.loads(data))
            except Exception:  # a child that failed reports nothing: its jobs are run below
                continue
    return [results[index] if index in results else jobs[index]() for index in range(len(jobs))]
