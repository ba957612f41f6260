"""Starts bqemulator 1.4.0 (the CLI, unchanged) with four faults of its Storage Write API fixed.

1. Its AppendRows handler builds the target table's Arrow schema from the top-level columns only
   (`write_servicer._table_arrow_schema` passes each column's name, type and mode, not the fields
   of a RECORD), so any append to a table with a RECORD column fails with "Attempted to convert a
   STRUCT with no fields". The REST path (`tabledata.insertAll`) builds the same schema with the
   nested fields; this passes them to it the same way.
2. It rebinds a connection to the stream each request names, and a request that omits
   `write_stream` names "" ("Stream not found: "). Google's proto lets every request after the
   first on a connection omit it (and the writer schema), and Google's client does: this keeps the
   connection's stream when the name is empty, as the real service does.
3. Its Storage Write handlers are synchronous, so grpc.aio runs them on worker threads, and an
   append's rows go into DuckDB from that thread (`_flush_to_target`: register the Arrow table,
   `INSERT ... SELECT`, unregister, snapshot) on the one DuckDB connection the REST API uses from
   the event loop, without the engine's write lock. DuckDB's Python binding waits for the
   connection's lock while holding the GIL, and a commit can free an unregistered Arrow view, which
   needs the GIL, while holding that lock: a REST query during an append deadlocked the whole
   process (the loop thread in `ClientContext::LockContext`, the worker in `take_gil` from
   `PythonDependencyItem::~PythonDependencyItem` under `CommitTransaction`), REST and gRPC alike.
   This runs `_flush_to_target` on the event loop under the engine's write lock, as the REST
   `insertAll` does its insert; the worker thread waits for it. Every DuckDB call of an append is
   then made on the loop thread, as the REST API's inserts and queries are.
4. Those worker threads are the event loop's default executor, min(32, CPUs + 4) of them (6 on
   two cores), and each open AppendRows connection holds one for as long as it stays open: the
   seventh connection, or any other Storage Write call after six connections, waited forever
   (three writing services with two connections each fill it). This gives the gRPC server a pool
   of its own of 64 threads (`migration_thread_pool`, grpc.aio's executor for synchronous
   handlers).

Nothing else changes. tests/README.md lists all four among the emulator's gaps.
"""

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc.aio

from bqemulator.grpc_api import write_servicer
from bqemulator.api.routes.tabledata import _build_arrow_schema


def _field(f):
    return {
        "name": f.name,
        "type": f.type,
        "mode": f.mode,
        "fields": [_field(sub) for sub in f.fields],
    }


def _table_arrow_schema(table_meta):
    return _build_arrow_schema([_field(f) for f in table_meta.schema_.fields])


write_servicer._table_arrow_schema = _table_arrow_schema

_ensure_stream_bound = write_servicer.BigQueryWriteHandler._ensure_stream_bound


def _keep_bound_stream(self, stream_name, bound_ctx, context):
    if not stream_name and bound_ctx is not None:
        return bound_ctx
    return _ensure_stream_bound(self, stream_name, bound_ctx, context)


write_servicer.BigQueryWriteHandler._ensure_stream_bound = _keep_bound_stream

_handler_init = write_servicer.BigQueryWriteHandler.__init__
_flush_to_target = write_servicer.BigQueryWriteHandler._flush_to_target


def _init_on_loop(self, context, manager=None):
    _handler_init(self, context, manager)
    # Built by build_grpc_server inside the server's running loop, which also serves REST.
    self._loop = asyncio.get_running_loop()


def _flush_on_loop(self, stream, rows):
    try:
        on_loop = asyncio.get_running_loop() is self._loop
    except RuntimeError:
        on_loop = False
    if on_loop:  # no handler calls it from the loop; waiting on the loop here would hang it
        return _flush_to_target(self, stream, rows)

    async def flush():
        async with self._ctx.engine.write_lock():
            _flush_to_target(self, stream, rows)

    return asyncio.run_coroutine_threadsafe(flush(), self._loop).result()


write_servicer.BigQueryWriteHandler.__init__ = _init_on_loop
write_servicer.BigQueryWriteHandler._flush_to_target = _flush_on_loop

_aio_server = grpc.aio.server


def _server_with_pool(*args, **kwargs):
    # bqemulator's build_grpc_server passes no pool, so its handlers got the loop's default one.
    if not args:
        kwargs.setdefault(
            "migration_thread_pool",
            ThreadPoolExecutor(max_workers=64, thread_name_prefix="grpc-handler"),
        )
    return _aio_server(*args, **kwargs)


grpc.aio.server = _server_with_pool

from bqemulator.cli import main  # noqa: E402

sys.argv[0] = "bqemulator"
sys.exit(main())
