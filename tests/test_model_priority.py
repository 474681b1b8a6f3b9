"""Queries go first on the embedding model: a waiting query runs before the next passage batch,
and while queries use the model, background batches pause for a bounded share (rag/embeddings.py)."""

from __future__ import annotations

import threading
import time

from rag.embeddings import QueriesFirstLock


def test_a_waiting_query_takes_the_model_before_the_next_background_batch():
    lock = QueriesFirstLock(share=1.0)
    order, started = [], threading.Event()
    release = threading.Event()

    def first_batch():
        with lock.hold(background=True):
            started.set()
            release.wait(5)
        order.append("batch 1 done")

    def next_batch():
        with lock.hold(background=True):
            order.append("batch 2")

    def query():
        with lock.hold():
            order.append("query")

    threads = [threading.Thread(target=first_batch)]
    threads[0].start()
    started.wait(5)
    threads.append(threading.Thread(target=next_batch))
    threads[1].start()  # the upload's next batch is already waiting ...
    time.sleep(0.1)
    threads.append(threading.Thread(target=query))
    threads[2].start()  # ... when a query arrives
    time.sleep(0.1)
    release.set()
    for t in threads:
        t.join(5)
    assert [o for o in order if o != "batch 1 done"] == ["query", "batch 2"]


def test_background_work_yields_its_share_while_queries_use_the_model():
    lock = QueriesFirstLock(share=0.5)
    with lock.hold(background=True):  # no query yet: no pause
        time.sleep(0.05)
    assert lock.paused_s == 0.0
    with lock.hold():  # a query used the model
        pass
    t = time.monotonic()
    with lock.hold(background=True):
        time.sleep(0.1)
    assert time.monotonic() - t >= 0.19 and 0.09 <= lock.paused_s <= 0.2  # as long again, paused
