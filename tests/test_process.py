"""A spawned worker's recorded peak memory is its own, not the resident size it inherited from its parent."""

import multiprocessing

from provenance_lib.process import peak_rss_mib


def _report(queue) -> None:
    queue.put(peak_rss_mib())


def test_spawned_worker_reports_its_own_peak():
    held = bytearray(400 * 2**20)  # 400 MiB resident in the parent while the worker starts
    held[::4096] = b"x" * len(held[::4096])
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_report, args=(queue,))
    worker.start()
    worker_peak = queue.get(timeout=60)
    worker.join()
    assert peak_rss_mib() > 400
    assert worker_peak < 200, f"the worker reported {worker_peak:.0f} MiB: its parent's size, not its own"
