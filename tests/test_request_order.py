"""Requests in flight on an object store are handed out in chunk order (request_slots), and
chunks asked to be fetched ahead while two are held start as soon as one is taken
(fetching): the first chunks' bytes come first, and the store is kept busy."""

import threading
import time

from pipeline.io.request_slots import Slots, ranked


def test_waiting_requests_are_served_by_rank_then_in_the_order_asked():
    slots = Slots(1)
    slots.acquire()  # held: everything below waits
    served, threads = [], []

    def ask(rank, name):
        def run():
            with ranked(rank) if rank is not None else _nothing():
                with slots:
                    served.append(name)
        t = threading.Thread(target=run)
        t.start()
        threads.append(t)
        while len(slots._waiting) < len(threads):  # queued before the next one asks
            time.sleep(0.001)

    ask(3, "chunk 3")
    ask(1, "chunk 1, first")
    ask(None, "planning")  # a request made for no chunk goes first
    ask(1, "chunk 1, second")
    ask(2, "chunk 2")
    slots.release()
    for t in threads:
        t.join(10)
    assert served == ["planning", "chunk 1, first", "chunk 1, second", "chunk 2", "chunk 3"]
    assert slots._free == 1  # every slot given back


def test_slots_bound_the_requests_in_flight():
    slots, lock = Slots(3), threading.Lock()
    now, peak = [0], [0]

    def request(i):
        with ranked(i % 4), slots:
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            time.sleep(0.002)
            with lock:
                now[0] -= 1

    threads = [threading.Thread(target=request, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak[0] == 3 and slots._free == 3


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
