"""Keyset cursors of the run list: where a page ended, opaque to clients.

A cursor is the last run's creation time and id, base64url-encoded; the next page starts after
that run, so pages stay as fast deep in the list as at its top, and runs created meanwhile do
not shift them.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from flowhost.store.reads import RunPosition


class BadCursor(ValueError):
    pass


def encode_cursor(position: RunPosition) -> str:
    created, run_id = position
    raw = f"{created.isoformat()}|{run_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> RunPosition:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_text, _, id_text = raw.partition("|")
        created = datetime.fromisoformat(created_text)
        run_id = uuid.UUID(id_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("not a cursor of this list (pass next_cursor as it came)") from None
    if created.tzinfo is None:
        raise BadCursor("not a cursor of this list (pass next_cursor as it came)")
    return created, run_id
