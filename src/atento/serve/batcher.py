"""Cross-request batching: requests from many clients decoded together in one batch.

Each model has one `Batcher` and one decoding thread. A request is a `Job` (its sentences'
ids, its translator, a future). The thread takes the oldest job, waits at most `max_wait_s`
from its arrival for more jobs with the same decoding settings (beam, alpha, nbest, attention
view) until their sources reach `max_batch_tokens`, and decodes them as one batch through
`Translator.translate_ids`; every job then gets its own sentences' hypotheses. Jobs with other
settings wait for their own batch, in arrival order. With `batching=False` every job is decoded
alone (one-at-a-time serving, the baseline of benchmarks/serve_load.py).

The queue is bounded (`max_queue` sentences): `submit` raises `QueueFull` beyond it, which the
server answers with 429. A job whose caller gave up (timeout) before its batch started is
skipped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import astuple, dataclass, field

from atento.inference import Translator
from atento.search import Hypothesis


class QueueFull(Exception):
    """The batcher's queue holds `max_queue` sentences already."""


@dataclass
class Job:
    translator: Translator
    sources: list[list[int]]  # ids without EOS
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple:
        """Jobs with equal keys decode the same way and can share a batch."""
        return (astuple(self.translator.search), self.translator.options)

    @property
    def tokens(self) -> int:
        return sum(len(s) + 1 for s in self.sources)  # + the EOS every source gets


class Batcher:
    """Queue + decoding thread for one model (see the module docstring)."""

    def __init__(
        self,
        *,
        max_batch_tokens: int = 2048,
        max_wait_s: float = 0.005,
        max_queue: int = 256,
        batching: bool = True,
        name: str = "atento-batcher",
    ) -> None:
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.batching = batching
        self._pending: deque[Job] = deque()
        self._queued = 0  # sentences in _pending
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0  # decoded so far (statistics for /health)
        self.sentences = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._queued

    def submit(self, translator: Translator, sources: list[list[int]]) -> Future:
        """Queue one request's sources; its future gets one n-best list per source."""
        job = Job(translator, sources)
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if self._queued + len(sources) > self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} sentences waiting)")
            self._pending.append(job)
            self._queued += len(sources)
            self._cond.notify_all()
        return job.future

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking jobs, finish the queued ones and end the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _take(self) -> list[Job] | None:
        """The next batch: the oldest job plus the later ones with its key, within the budget."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None
            first = self._pending[0]
            if self.batching:
                deadline = first.arrived + self.max_wait_s
                while not self._closed:
                    ready = sum(j.tokens for j in self._pending if j.key == first.key)
                    left = deadline - time.monotonic()
                    if ready >= self.max_batch_tokens or left <= 0:
                        break
                    self._cond.wait(left)
            batch, tokens = [], 0
            for job in list(self._pending):
                if job.key != first.key or (batch and tokens + job.tokens > self.max_batch_tokens):
                    continue
                batch.append(job)
                tokens += job.tokens
                if not self.batching:
                    break
            for job in batch:
                self._pending.remove(job)
                self._queued -= len(job.sources)
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            jobs = [j for j in batch if j.future.set_running_or_notify_cancel()]
            if jobs:
                self._decode(jobs)

    def _decode(self, jobs: list[Job]) -> None:
        sources = [s for j in jobs for s in j.sources]
        translator = jobs[0].translator.with_search(batch_size=max(1, len(sources)), workers=1)
        try:
            results: list[list[Hypothesis]] = translator.translate_ids(sources)
        except Exception as exc:  # the callers see it; the thread keeps serving
            for j in jobs:
                j.future.set_exception(exc)
            return
        self.batches += 1
        self.sentences += len(sources)
        start = 0
        for j in jobs:
            j.future.set_result(results[start : start + len(j.sources)])
            start += len(j.sources)
