"""PyTorch datasets over Quiver's saved training sets.

``FlightDataset`` is an ``IterableDataset`` over a training set saved on
the server (``Client.save_training_set``, or ``quiver training-set --out``
into the data root). The server splits the saved file into parts (ranges
of its record batches); each DataLoader worker of each distributed rank
reads its own share of the parts over Arrow Flight, so every row is read
exactly once per epoch, and the readers pull in parallel. Each Arrow
record batch becomes a dict of tensors: numeric columns without nulls are
views of the Arrow buffers (through NumPy, no copy), fixed-length lists of
numbers become 2-D tensors, booleans are unpacked (Arrow packs them in
bits), timestamps become int64 nanoseconds since the epoch.

    import quiver, quiver.torch

    client = quiver.Client(flight="grpc://127.0.0.1:8815")
    client.save_training_set("driver_labels.parquet", "sets/train.arrow",
                             features=["driver_hourly:conv_rate", "driver_hourly:acc_rate"],
                             overwrite=True)
    ds = quiver.torch.FlightDataset(client, "sets/train.arrow", columns=["conv_rate", "acc_rate", "trip_completed"])
    for batch in quiver.torch.loader(ds, num_workers=2):
        ...  # batch["conv_rate"] is a float tensor

Needs torch (and NumPy, which comes with it).
"""

from __future__ import annotations

import os
import queue
import random
import threading
import warnings
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ._client import Client, DatasetPart, DatasetParts, merge_parts



def _from_numpy(a: np.ndarray) -> torch.Tensor:
    # Arrow memory is immutable, so NumPy views of it are read-only and
    # torch warns about that; the tensors made from them must not be
    # written to in place (see FlightDataset).
    if a.flags.writeable:
        return torch.from_numpy(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(a)

__all__ = ["FlightDataset", "loader", "shard", "to_tensors"]


def shard(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """This reader's index and the number of readers: distributed rank ×
    DataLoader workers. The rank and world size are the arguments, else
    torch.distributed's when it is initialized, else $RANK and $WORLD_SIZE,
    else 0 and 1."""
    if rank is None or world_size is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            r, w = dist.get_rank(), dist.get_world_size()
        else:
            r, w = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        rank = r if rank is None else rank
        world_size = w if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not within a world of size {world_size}")
    info = get_worker_info()
    workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
    return rank * workers + worker, world_size * workers


def _column_tensor(name: str, arr: pa.Array, fill: Any) -> torch.Tensor:
    t = arr.type
    if fill is not None and arr.null_count:
        arr = pc.fill_null(arr, fill)
    if pa.types.is_timestamp(t) or pa.types.is_duration(t):
        arr = arr.cast(pa.timestamp("ns") if pa.types.is_timestamp(t) else pa.duration("ns")).cast(pa.int64())
        t = arr.type
    if pa.types.is_floating(t) or pa.types.is_integer(t):
        if arr.null_count == 0:
            return _from_numpy(arr.to_numpy(zero_copy_only=True))
        if pa.types.is_floating(t):
            return _from_numpy(arr.to_numpy(zero_copy_only=False))  # nulls as NaN
        raise ValueError(f"column {name!r} ({t}) has {arr.null_count} nulls; "
                         f"pass fill_null={{{name!r}: value}} or leave it out of columns")
    if pa.types.is_boolean(t):
        if arr.null_count:
            raise ValueError(f"column {name!r} (bool) has {arr.null_count} nulls; "
                             f"pass fill_null={{{name!r}: False}} or leave it out of columns")
        return _from_numpy(arr.to_numpy(zero_copy_only=False))
    if (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and \
            (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        return _list_tensor(name, arr)
    raise TypeError(f"column {name!r} is {t}, which has no tensor form; leave it out of columns")


def _list_tensor(name: str, arr: pa.Array) -> torch.Tensor:
    """An (n, k) tensor of a list array whose lists all hold k numbers: a
    view of the values buffer when nothing is null, else a copy with NaN
    for null lists and values (floating values only)."""
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        k = arr.type.list_size
    else:
        lengths = pc.list_value_length(arr).drop_null()
        lo, hi = (pc.min(lengths).as_py(), pc.max(lengths).as_py()) if len(lengths) else (0, 0)
        if lo != hi:
            raise ValueError(f"column {name!r} holds lists of {lo} to {hi} values; a tensor needs one length")
        k = lo
    flat = arr.flatten()
    if arr.null_count == 0 and flat.null_count == 0:
        return _from_numpy(flat.to_numpy(zero_copy_only=True).reshape(n, k))
    if not pa.types.is_floating(arr.type.value_type):
        raise ValueError(f"column {name!r} has null lists or values; only floating lists take NaN for them")
    out = np.full((n, k), np.nan, dtype=arr.type.value_type.to_pandas_dtype())
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    out[valid] = flat.to_numpy(zero_copy_only=False).reshape(-1, k)
    return _from_numpy(out)


def to_tensors(batch: pa.RecordBatch, columns: Sequence[str] | None = None,
               fill_null: Mapping[str, Any] | Any = None) -> dict[str, torch.Tensor]:
    """A dict of column name → tensor for a record batch (see the module's
    doc for the conversions). ``columns`` None takes every column with a
    tensor form and leaves strings and the like out; named columns must
    convert. ``fill_null`` is a value for every column or a dict of values
    by column, put in place of nulls first (a copy of that column)."""
    names = list(columns) if columns is not None else batch.schema.names
    out = {}
    for name in names:
        idx = batch.schema.get_field_index(name)
        if idx < 0:
            raise KeyError(f"the dataset has no column {name!r} (columns: {', '.join(batch.schema.names)})")
        fill = fill_null.get(name) if isinstance(fill_null, Mapping) else fill_null
        try:
            out[name] = _column_tensor(name, batch.column(idx), fill)
        except TypeError:
            if columns is not None:
                raise
    return out


class FlightDataset(IterableDataset):
    """An IterableDataset over a saved training set on a Quiver server.

    ``path`` is the saved set within the server's data root. The parts are
    listed once, here; iterating reads this reader's share of them (see
    ``shard``): reader i of n takes the i-th of n contiguous shares of the
    part order, which is the file's order, or, with ``shuffle``, its
    permutation by ``seed`` and the epoch, the same on every reader, so
    that the shares never overlap. Neighbouring parts of a share are read
    with one request. ``shuffle`` also permutes the rows within each
    batch (a copy). ``set_epoch``
    changes the epoch, as ``DistributedSampler.set_epoch`` does.

    A thread reads ``prefetch`` batches ahead of the caller. Each item is
    a dict of tensors for one record batch, or for
    ``batch_rows`` rows when set (the last of a reader's share may be
    shorter, or dropped with ``drop_last``). Use it with
    ``DataLoader(ds, batch_size=None)``, or ``loader``. The tensors view
    Arrow memory: do not write to them in place (``.clone()`` first).

    Parts are tied to the file as it was listed: if it is replaced, a
    reader raises ``QuiverError`` with code ``Aborted``; ``refresh()``
    lists the new file's parts.
    """

    def __init__(self, client: Client, path: str, columns: Sequence[str] | None = None,
                 batch_rows: int | None = None, drop_last: bool = False, shuffle: bool = False, seed: int = 0,
                 fill_null: Mapping[str, Any] | Any = None, rank: int | None = None, world_size: int | None = None,
                 prefetch: int = 4):
        super().__init__()
        if batch_rows is not None and batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
        self.client = client
        self.path = os.fspath(path)
        self.columns = list(columns) if columns is not None else None
        self.batch_rows = batch_rows
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.seed = seed
        self.fill_null = fill_null
        self.rank = rank
        self.world_size = world_size
        self.prefetch = prefetch
        self.epoch = 0
        self._client: Client | None = None
        self._pid: int | None = None
        self.parts: DatasetParts = DatasetParts()
        self.refresh()

    @classmethod
    def from_training_set(cls, client: Client, entities, path: str, features: Sequence[str] | None = None,
                          feature_service: str | None = None, overwrite: bool = False,
                          **kwargs) -> "FlightDataset":
        """Builds a training set once on the server, saved at ``path``
        (``Client.save_training_set``), and returns the dataset over it."""
        client.save_training_set(entities, path, features=features, feature_service=feature_service,
                                 overwrite=overwrite)
        return cls(client, path, **kwargs)

    def refresh(self) -> None:
        """Lists the saved set's parts again (after it was replaced)."""
        self.parts = self.client.dataset_parts(self.path)

    @property
    def rows(self) -> int:
        """The saved set's rows (-1 when the server did not say)."""
        return self.parts.rows

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def my_parts(self) -> list[DatasetPart]:
        """The parts this reader reads this epoch: a contiguous share of
        the part order (the file's order, or its shuffle by seed and
        epoch), neighbouring parts of the file merged into one read."""
        order = list(range(len(self.parts)))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        i, n = shard(self.rank, self.world_size)
        k = len(order)
        return merge_parts([self.parts[j] for j in order[i * k // n:(i + 1) * k // n]])

    def batches(self) -> Iterator[pa.RecordBatch]:
        """This reader's record batches, as Arrow, in ``batch_rows`` when
        set. A thread reads ahead (up to ``prefetch`` batches, across
        parts) while the caller converts and trains, so the network and
        the decoding overlap the work on the batches."""
        batches = self._prefetched(self._client_here(), self.my_parts())
        if self.shuffle:
            batches = self._shuffled(batches)
        yield from self._rebatch(batches)

    def _shuffled(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # Rows move within each batch too (a copy), by the seed, the epoch
        # and the reader, so an epoch is repeatable.
        i, _ = shard(self.rank, self.world_size)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        for b in batches:
            yield b.take(pa.array(rng.permutation(b.num_rows)))

    def _client_here(self) -> Client:
        # One connection per process (workers are other processes), opened
        # on first use there and kept for the next epochs.
        if self._client is None or self._pid != os.getpid():
            self._client, self._pid = self.client.clone(), os.getpid()
        return self._client

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_client"], state["_pid"] = None, None
        return state

    def _prefetched(self, client: Client, parts: list[DatasetPart]) -> Iterator[pa.RecordBatch]:
        q: queue.Queue = queue.Queue(maxsize=max(self.prefetch, 1))
        stop = threading.Event()
        done = object()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    pass
            return False

        def produce():
            # The next part's read is opened before this one is drained, so
            # the server sends it while this one is still being read.
            opened = []
            try:
                if parts:
                    opened.append(client.read_part(parts[0]))
                for i in range(len(parts)):
                    if i + 1 < len(parts):
                        opened.append(client.read_part(parts[i + 1]))
                    it = opened[0].batches()
                    try:
                        for b in it:
                            if not put(b):
                                return
                    finally:
                        it.close()  # cancels the read when stopped early
                    opened.pop(0)
                put(done)
            except BaseException as e:  # raised in the caller's thread
                put(e)
            finally:
                for ts in opened:
                    ts.close()

        t = threading.Thread(target=produce, name="quiver-prefetch", daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            t.join(timeout=30)

    def _rebatch(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        n = self.batch_rows
        if n is None:
            yield from (b for b in batches if b.num_rows)
            return
        pending: list[pa.RecordBatch] = []
        have = 0
        for b in batches:
            off = 0
            while off < b.num_rows:
                take = min(n - have, b.num_rows - off)
                pending.append(b.slice(off, take))
                have += take
                off += take
                if have == n:
                    yield _join(pending)
                    pending, have = [], 0
        if have and not self.drop_last:
            yield _join(pending)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for b in self.batches():
            yield to_tensors(b, self.columns, self.fill_null)


def _join(pieces: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One batch of consecutive slices: the slice itself when there is one
    (no copy), else their rows copied together."""
    if len(pieces) == 1:
        return pieces[0]
    return pa.Table.from_batches(pieces).combine_chunks().to_batches()[0]


def _to_device(item: Any, device: torch.device, non_blocking: bool) -> Any:
    if isinstance(item, torch.Tensor):
        return item.to(device, non_blocking=non_blocking)
    if isinstance(item, Mapping):
        return {k: _to_device(v, device, non_blocking) for k, v in item.items()}
    if isinstance(item, (list, tuple)):
        return type(item)(_to_device(v, device, non_blocking) for v in item)
    return item


class _DeviceLoader:
    def __init__(self, dl: DataLoader, device: torch.device | None):
        self.loader = dl
        self.device = device

    def __iter__(self):
        if self.device is None:
            yield from self.loader
            return
        non_blocking = bool(self.loader.pin_memory)
        for item in self.loader:
            yield _to_device(item, self.device, non_blocking)

    def __len__(self):
        return len(self.loader)


def loader(dataset: FlightDataset, num_workers: int = 0, device: str | torch.device | None = None,
           pin_memory: bool | None = None, multiprocessing_context: str | None = None, **kwargs):
    """A DataLoader over the dataset's items as they come (batch_size=None):
    ``num_workers`` processes read in parallel, the batches are pinned when
    ``pin_memory`` (default: when the device is CUDA) and moved to
    ``device`` in this process. Worker processes start with "spawn" by
    default (Arrow Flight's gRPC connections do not survive a fork); pass
    ``multiprocessing_context`` to choose. Other arguments go to the
    DataLoader; with ``persistent_workers=True`` the workers start once
    and keep the dataset as it was then, so a later ``set_epoch`` does not
    reach them (the shuffle stays that of the first epoch)."""
    dev = torch.device(device) if device is not None else None
    if pin_memory is None:
        pin_memory = dev is not None and dev.type == "cuda"
    if num_workers > 0 and multiprocessing_context is None:
        multiprocessing_context = "spawn"
    dl = DataLoader(dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
                    multiprocessing_context=multiprocessing_context if num_workers > 0 else None, **kwargs)
    return _DeviceLoader(dl, dev)
