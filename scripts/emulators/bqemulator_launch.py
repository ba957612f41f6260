"""Starts bqemulator 1.4.0 (the CLI, unchanged) with two bugs of its Storage Write API fixed.

1. Its AppendRows handler builds the target table's Arrow schema from the top-level columns only
   (`write_servicer._table_arrow_schema` passes each column's name, type and mode, not the fields
   of a RECORD), so any append to a table with a RECORD column fails with "Attempted to convert a
   STRUCT with no fields". The REST path (`tabledata.insertAll`) builds the same schema with the
   nested fields; this passes them to it the same way.
2. It rebinds a connection to the stream each request names, and a request that omits
   `write_stream` names "" ("Stream not found: "). Google's proto lets every request after the
   first on a connection omit it (and the writer schema), and Google's client does: this keeps the
   connection's stream when the name is empty, as the real service does.

Nothing else changes. tests/README.md lists both among the emulator's gaps.
"""

import sys

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

from bqemulator.cli import main  # noqa: E402

sys.argv[0] = "bqemulator"
sys.exit(main())
