"""Azure Blob Storage -> DataFrame: this package against the SDK, a thread pool and adlfs.

Run (from the repository root)::

    pip install -e ".[test,bench]" && python bench/bench_azure_blob.py

It uses the blob service named by ``DEEPANALYZE_TEST_AZURE_CONN`` (or starts Azurite the
way the tests do), loads one container with 20,000 small blobs under nested prefixes,
200 CSV blobs of about 50 KB, one 200 MB blob and one ~50 MB Parquet blob, and times,
interleaved round by round, the median of several runs of:

- listing 20,000 blobs with their properties: ours (flat) against the SDK's
  ``list_blobs`` and a ``walk_blobs`` traversal, and adlfs ``find``; one folder level:
  ours against ``walk_blobs`` and adlfs ``ls``;
- 200 CSVs -> one DataFrame: ours (a glob, and the 200 paths) against sequential SDK
  downloads, 8 threads, asyncio gather (64 in flight), and adlfs ``cat`` + pandas;
- the 200 MB blob's bytes: ours against ``download_blob().readall()`` with
  ``max_concurrency`` 1 (the default), 4 and 8, and the ceiling: raw HTTP GETs with
  aiohttp (one stream, and 4 parallel ranges) from the same service;
- the Parquet blob -> DataFrame: ours against ``pandas.read_parquet('az://...')``
  (adlfs) and an SDK download + ``pyarrow.parquet``.

It prints each median with its spread (min and max over the runs), each method's time
as a multiple of ours (above 1: ours is faster), for the 200 MB blob also as a multiple
of one raw GET stream, the peak memory each method added while it ran (Linux: the
process's peak resident size, reset before each call) and, for the 200 MB blob, that peak
over the blob's size; then whether the targets are met. Azurite is single-threaded and
CPU-bound, and the machine may be busy: compare ratios, not absolute times, and rerun
to confirm. Options: ``--runs N``, ``--list-runs N``, ``--only GROUP`` (``list``,
``csv``, ``blob``, ``parquet``; repeatable: time only those, and load only their data),
``--keep`` (keep the data for a rerun against the same service).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import io
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas
from azure.storage.blob.aio import BlobPrefix
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deepanalyze_jupyter import DataSourceConfig, DataSourceRegistry, Secret  # noqa: E402
from deepanalyze_jupyter.frames import arrow_to_frame  # noqa: E402
from tests.services import AzuriteServer, start_azurite  # noqa: E402

CONTAINER = "bench-data"
SMALL_BLOBS = 20_000
CSV_BLOBS = 200
BIG_BYTES = 200 << 20
PARQUET_ROWS = 3_500_000
READY_MARKER = "_ready"

LIST_ALL = "list 20,000 blobs with properties (flat)"
LIST_LEVEL = "list one folder level (100 blobs)"
CSVS = "200 CSVs -> one DataFrame"
BLOB = "200 MB blob -> bytes"
PARQUET = "~50 MB parquet -> DataFrame"
#: ``--only`` names and the groups each stands for.
GROUPS_BY_NAME = {"list": (LIST_ALL, LIST_LEVEL), "csv": (CSVS,), "blob": (BLOB,), "parquet": (PARQUET,)}
RAW_STREAM = "ceiling: raw GET, 1 stream"


# -- loading ---------------------------------------------------------------------------------


def _csv_blob(index: int) -> bytes:
    rng = np.random.default_rng(index)
    rows = 1000
    frame = pd.DataFrame(
        {
            "id": np.arange(index * rows, (index + 1) * rows),
            "name": [f"customer-{n:06d}" for n in rng.integers(0, 999_999, rows)],
            "value": rng.normal(100, 15, rows).round(4),
            "when": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**6, rows), "s"),
        }
    )
    return frame.to_csv(index=False).encode()


def _parquet_blob() -> bytes:
    rng = np.random.default_rng(7)
    table = pa.table(
        {
            "id": np.arange(PARQUET_ROWS, dtype=np.int64),
            "value": rng.normal(size=PARQUET_ROWS),
            "count": rng.integers(0, 1000, PARQUET_ROWS, dtype=np.int32),
            "label": pa.array([f"L{n % 5000:05d}" for n in range(PARQUET_ROWS)]),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


def small_name(index: int) -> str:
    return f"small/p{index % 20:02d}/q{(index // 20) % 10}/f{index:05d}.txt"


async def _load(connection_string: str, only: set[str]) -> None:
    async with AsyncBlobServiceClient.from_connection_string(connection_string) as service:
        container = service.get_container_client(CONTAINER)
        if not await container.exists():
            await container.create_container()
        if await container.get_blob_client(READY_MARKER).exists():
            print("data already loaded")
            return
        if only == {"blob"}:  # the 200 MB blob alone, for a quick rerun of that group
            if not await container.get_blob_client("big.bin").exists():
                await container.upload_blob("big.bin", os.urandom(BIG_BYTES), max_concurrency=4)
            return
        gate = asyncio.Semaphore(64)

        async def put(name: str, data: bytes) -> None:
            async with gate:
                await container.upload_blob(name, data, overwrite=True, max_concurrency=4)

        started = time.perf_counter()
        await asyncio.gather(*(put(small_name(i), f"blob {i}\n".encode()) for i in range(SMALL_BLOBS)))
        await asyncio.gather(*(put(f"csv/f{i:03d}.csv", _csv_blob(i)) for i in range(CSV_BLOBS)))
        await put("big.bin", os.urandom(BIG_BYTES))
        parquet = _parquet_blob()
        await put("big.parquet", parquet)
        await put(READY_MARKER, b"")
        elapsed = time.perf_counter() - started
        print(
            f"loaded {SMALL_BLOBS} small blobs, {CSV_BLOBS} CSVs (~{len(_csv_blob(0)) // 1024} KB each), "
            f"{BIG_BYTES >> 20} MB blob, {len(parquet) / 2**20:.0f} MB parquet in {elapsed:.0f} s"
        )


# -- timing ------------------------------------------------------------------------------------


Method = tuple[str, Callable[[], Any]]


class Bench:
    """Runs sync and async methods on one event loop and keeps their times."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.times: dict[str, dict[str, list[float]]] = {}
        self.peaks: dict[str, dict[str, list[int]]] = {}
        self.shapes: dict[str, dict[str, str]] = {}

    def run(self, awaitable: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(awaitable)

    def round(self, group: str, methods: list[Method], number: int) -> None:
        """Time each method once, starting the order at a different method each round."""
        shift = number % len(methods)
        for method, call in methods[shift:] + methods[:shift]:
            gc.collect()  # the previous method's garbage is not this one's cost
            before = _reset_peak_memory()
            started = time.perf_counter()
            result = call()
            elapsed = time.perf_counter() - started
            if before is not None:
                self.peaks.setdefault(group, {}).setdefault(method, []).append(_peak_memory() - before)
            self.times.setdefault(group, {}).setdefault(method, []).append(elapsed)
            self.shapes.setdefault(group, {})[method] = _shape(result)
            del result

    def report(self, group: str, order: list[Method], baseline: str | None = None) -> dict[str, float]:
        """Print each method's median, spread, multiple of ours (and of ``baseline``) and
        peak memory; return the medians."""
        times = self.times[group]
        medians = {method: statistics.median(times[method]) for method, _ in order}
        ours = next(value for method, value in medians.items() if method.startswith("ours"))
        print(f"\n{group}")
        for method, median in medians.items():
            runs = times[method]
            against = f"  {median / medians[baseline]:5.2f}x raw stream" if baseline else ""
            print(
                f"  {method:36s} {median:8.3f} s  (min {min(runs):.3f}, max {max(runs):.3f}, "
                f"{len(runs)} runs)  {median / ours:5.2f}x ours{against}  {self._peak(group, method)}"
                f"  {self.shapes[group][method]}"
            )
        return medians

    def _peak(self, group: str, method: str) -> str:
        peaks = self.peaks.get(group, {}).get(method)
        return f"peak +{statistics.median(peaks) / 2**20:.0f} MiB" if peaks else ""

    def peak_ratio(self, group: str, method: str, size: int) -> float | None:
        """The median peak memory a method added, over ``size``; None where not measured."""
        peaks = self.peaks.get(group, {}).get(method)
        return statistics.median(peaks) / size if peaks else None


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    return int(match.group(1)) << 10 if match else 0


def _reset_peak_memory() -> int | None:
    """Reset the process's peak resident size and return the current one (Linux), else None."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return None
    return _status_bytes("VmRSS")


def _peak_memory() -> int:
    return _status_bytes("VmHWM")


def _shape(result: Any) -> str:
    if isinstance(result, pd.DataFrame):
        return f"{result.shape[0]:,} rows x {result.shape[1]}"
    if isinstance(result, (bytes, bytearray, memoryview)):
        return f"{len(result) / 2**20:.0f} MiB"
    if isinstance(result, int):
        return f"{result:,} items"
    return ""


# -- the methods -------------------------------------------------------------------------------


def parse_csv_tables(blobs: list[bytes]) -> pd.DataFrame:
    tables = [pa_csv.read_csv(pa.BufferReader(data)) for data in blobs]
    return arrow_to_frame(pa.concat_tables(tables))


async def sdk_list_blobs(service: AsyncBlobServiceClient) -> int:
    rows = []
    async for blob in service.get_container_client(CONTAINER).list_blobs(name_starts_with="small/"):
        rows.append((blob.name, blob.size, blob.last_modified, blob.content_settings.content_type, blob.etag))
    return len(rows)


async def sdk_walk(service: AsyncBlobServiceClient, prefix: str, recursive: bool) -> int:
    container = service.get_container_client(CONTAINER)
    rows: list[tuple[Any, ...]] = []

    async def walk(start: str) -> None:
        async for item in container.walk_blobs(name_starts_with=start):
            if isinstance(item, BlobPrefix):
                rows.append((item.name,))
                if recursive:
                    await walk(item.name)
            else:
                rows.append(
                    (item.name, item.size, item.last_modified, item.content_settings.content_type, item.etag)
                )

    await walk(prefix)
    return len(rows)


async def sdk_gather_csv(service: AsyncBlobServiceClient, names: list[str], in_flight: int) -> pd.DataFrame:
    container = service.get_container_client(CONTAINER)
    gate = asyncio.Semaphore(in_flight)

    async def one(name: str) -> bytes:
        async with gate:
            return await (await container.download_blob(name)).readall()

    return parse_csv_tables(list(await asyncio.gather(*(one(name) for name in names))))


def sdk_sequential_csv(service: BlobServiceClient, names: list[str]) -> pd.DataFrame:
    container = service.get_container_client(CONTAINER)
    return parse_csv_tables([container.download_blob(name).readall() for name in names])


def sdk_threads_csv(service: BlobServiceClient, names: list[str], pool: ThreadPoolExecutor) -> pd.DataFrame:
    container = service.get_container_client(CONTAINER)

    def one(name: str) -> pa.Table:
        return pa_csv.read_csv(pa.BufferReader(container.download_blob(name).readall()))

    return arrow_to_frame(pa.concat_tables(list(pool.map(one, names))))


def adlfs_csv(fs: Any, names: list[str]) -> pd.DataFrame:
    blobs = fs.cat([f"{CONTAINER}/{name}" for name in names])
    return pd.concat(
        [pd.read_csv(io.BytesIO(blobs[f"{CONTAINER}/{name}"])) for name in names], ignore_index=True
    )


async def sdk_download(service: AsyncBlobServiceClient, name: str, concurrency: int) -> bytes:
    downloader = await service.get_blob_client(CONTAINER, name).download_blob(max_concurrency=concurrency)
    return await downloader.readall()


async def raw_get(session: aiohttp.ClientSession, url: str, parts: int, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    step = -(-size // parts)

    async def one(start: int) -> None:
        end = min(size, start + step) - 1
        async with session.get(url, headers={"Range": f"bytes={start}-{end}"}) as response:
            position = start
            async for piece in response.content.iter_chunked(1 << 20):
                view[position : position + len(piece)] = piece
                position += len(piece)

    await asyncio.gather(*(one(start) for start in range(0, size, step)))
    return buffer


async def sdk_parquet(service: AsyncBlobServiceClient) -> pd.DataFrame:
    data = await (await service.get_blob_client(CONTAINER, "big.parquet").download_blob()).readall()
    return arrow_to_frame(pq.read_table(pa.BufferReader(data)))


# -- the run -----------------------------------------------------------------------------------


def check(label: str, ok: bool, detail: str) -> None:
    print(f"  [{'met' if ok else 'MISSED'}] {label}: {detail}")


def check_targets(bench: Bench, medians: dict[str, dict[str, float]]) -> None:
    """Say, for each group timed, whether its targets are met."""
    if LIST_ALL in medians:
        listing = medians[LIST_ALL]
        ours = listing["ours list_items(recursive)"]
        check(
            "listing within 1.1x of list_blobs",
            ours <= 1.1 * listing["sdk list_blobs"],
            f"{ours / listing['sdk list_blobs']:.2f}x",
        )
        check(
            "listing faster than adlfs find",
            ours < listing["adlfs find(detail)"],
            f"adlfs takes {listing['adlfs find(detail)'] / ours:.2f}x ours",
        )
    if CSVS in medians:
        csvs = medians[CSVS]
        ours = csvs["ours read(glob)"]
        best = min(csvs["sdk aio gather (64)"], csvs["sdk 8 threads"])
        check(
            "200 CSVs at least as fast as the best of gather and threads",
            ours <= best,
            f"best takes {best / ours:.2f}x ours",
        )
        check(
            "200 CSVs at least 1.8x faster than adlfs",
            csvs["adlfs cat + pandas"] >= 1.8 * ours,
            f"adlfs takes {csvs['adlfs cat + pandas'] / ours:.2f}x ours",
        )
    if BLOB in medians:
        download = medians[BLOB]
        ours = download["ours fetch"]
        check(
            "200 MB within 1.3x of one raw GET stream",
            ours <= 1.3 * download[RAW_STREAM],
            f"{ours / download[RAW_STREAM]:.2f}x the raw stream",
        )
        default = download["sdk readall (max_concurrency=1)"]
        check(
            "200 MB at least 2x faster than the default readall",
            default >= 2 * ours,
            f"default takes {default / ours:.2f}x ours",
        )
        peak = bench.peak_ratio(BLOB, "ours fetch", BIG_BYTES)
        if peak is not None:
            check("200 MB peak memory within 1.1x of the blob", peak <= 1.1, f"{peak:.2f}x the blob's size")
    if PARQUET in medians:
        parquet = medians[PARQUET]
        ours = parquet["ours read"]
        check(
            "parquet at least as fast as adlfs",
            ours <= parquet["adlfs pandas.read_parquet"],
            f"adlfs takes {parquet['adlfs pandas.read_parquet'] / ours:.2f}x ours",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds of the read benchmarks")
    parser.add_argument("--list-runs", type=int, default=3, help="rounds of the 20,000-blob listings")
    parser.add_argument(
        "--only", action="append", choices=sorted(GROUPS_BY_NAME), help="time only this group (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the container after the run")
    args = parser.parse_args()
    only = set(args.only or GROUPS_BY_NAME)

    server: AzuriteServer = start_azurite()
    connection_string = server.connection_string
    print(f"blob service at {server.blob_endpoint}; {os.cpu_count()} CPUs")
    asyncio.run(_load(connection_string, only))

    import adlfs  # type: ignore[import-untyped]

    bench = Bench()
    registry = DataSourceRegistry()
    bench.run(
        registry.register_data_source(
            DataSourceConfig(
                "bench",
                "azure_blob",
                {"container": CONTAINER},
                {"connection_string": Secret(connection_string)},
            )
        )
    )
    connector: Any = bench.run(registry.get_connector("bench"))
    service = AsyncBlobServiceClient.from_connection_string(connection_string)
    sync_service = BlobServiceClient.from_connection_string(connection_string)
    pool = ThreadPoolExecutor(8)
    fs = adlfs.AzureBlobFileSystem(connection_string=connection_string)
    http = bench.run(_client_session())
    sas = generate_blob_sas(
        server.account_name,
        CONTAINER,
        "big.bin",
        account_key=server.account_key,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=2),
    )
    big_url = f"{server.blob_endpoint}/{CONTAINER}/big.bin?{sas}"
    csv_names = [f"csv/f{i:03d}.csv" for i in range(CSV_BLOBS)]
    one_level = "small/p00/q0/"

    def sdk_readall(concurrency: int) -> bytes:
        return bench.run(sdk_download(service, "big.bin", concurrency))  # type: ignore[no-any-return]

    groups: dict[str, list[Method]] = {
        LIST_ALL: [
            (
                "ours list_items(recursive)",
                lambda: bench.run(
                    registry.list_items("bench", "small/", recursive=True, limit=100_000, refresh=True)
                ),
            ),
            ("sdk list_blobs", lambda: bench.run(sdk_list_blobs(service))),
            ("sdk walk_blobs (recursive)", lambda: bench.run(sdk_walk(service, "small/", True))),
            ("adlfs find(detail)", lambda: len(fs.find(f"{CONTAINER}/small/", detail=True))),
        ],
        LIST_LEVEL: [
            ("ours list_items", lambda: bench.run(registry.list_items("bench", one_level, refresh=True))),
            ("sdk walk_blobs", lambda: bench.run(sdk_walk(service, one_level, False))),
            (
                "adlfs ls(detail)",
                lambda: (fs.invalidate_cache(), len(fs.ls(f"{CONTAINER}/{one_level}", detail=True)))[1],
            ),
        ],
        CSVS: [
            ("ours read(glob)", lambda: bench.run(registry.read("bench", "csv/*.csv", limit=None))),
            ("ours read(200 paths)", lambda: bench.run(registry.read("bench", csv_names, limit=None))),
            ("sdk sequential", lambda: sdk_sequential_csv(sync_service, csv_names)),
            ("sdk 8 threads", lambda: sdk_threads_csv(sync_service, csv_names, pool)),
            ("sdk aio gather (64)", lambda: bench.run(sdk_gather_csv(service, csv_names, 64))),
            ("adlfs cat + pandas", lambda: adlfs_csv(fs, csv_names)),
        ],
        BLOB: [
            ("ours fetch", lambda: bench.run(connector.fetch("big.bin"))),
            *(
                (f"sdk readall (max_concurrency={concurrency})", functools.partial(sdk_readall, concurrency))
                for concurrency in (1, 4, 8)
            ),
            (RAW_STREAM, lambda: bench.run(raw_get(http, big_url, 1, BIG_BYTES))),
            ("ceiling: raw GET, 4 ranges", lambda: bench.run(raw_get(http, big_url, 4, BIG_BYTES))),
        ],
        PARQUET: [
            ("ours read", lambda: bench.run(registry.read("bench", "big.parquet", limit=None))),
            (
                "adlfs pandas.read_parquet",
                lambda: pd.read_parquet(
                    f"az://{CONTAINER}/big.parquet", storage_options={"connection_string": connection_string}
                ),
            ),
            ("sdk readall + pyarrow", lambda: bench.run(sdk_parquet(service))),
        ],
    }
    chosen = {title: groups[title] for name in sorted(only) for title in GROUPS_BY_NAME[name]}

    try:
        if LIST_ALL in chosen:
            for number in range(args.list_runs):
                print(f"listing round {number + 1}/{args.list_runs}", flush=True)
                bench.round(LIST_ALL, chosen[LIST_ALL], number)
        for number in range(args.runs):
            print(f"read round {number + 1}/{args.runs}", flush=True)
            for group in [title for title in chosen if title != LIST_ALL]:
                bench.round(group, chosen[group], number)

        print("\nmedians (the multiple is the method's time over ours: above 1, ours is faster)")
        medians = {
            title: bench.report(title, methods, RAW_STREAM if title == BLOB else None)
            for title, methods in chosen.items()
        }
        print("\ntargets")
        check_targets(bench, medians)
    finally:
        bench.run(http.close())
        bench.run(service.close())
        bench.run(registry.disconnect_all())
        sync_service.close()
        pool.shutdown()
        if not args.keep:
            with BlobServiceClient.from_connection_string(connection_string) as cleanup:
                cleanup.delete_container(CONTAINER)
        server.close()


async def _client_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))


if __name__ == "__main__":
    main()
