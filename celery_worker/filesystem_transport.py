"""The embedded broker: kombu's file-system transport, with messages written atomically.

kombu's own ``_put`` creates the message file under its final name, then writes it. A
worker polling the folder (every 0.05 s on the embedded default) can move and read the
file in between: it reads nothing, stops with ``JSONDecodeError`` ("Unrecoverable
error"), and the message is lost, since the producer's bytes land in the file the worker
already took. Here a message is written under a name the consumer ignores and renamed to
its final name once complete (``os.replace`` is atomic within a folder), so a consumer
sees a whole message or none.

Selected by ``CELERY_BROKER_TRANSPORT`` in the settings when no broker URL is set.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL_SUFFIX = ".partial"  # never "<queue>.msg", which is all a consumer picks up


class Channel(filesystem.Channel):
    def _put(self, queue: Any, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Put ``message`` onto ``queue``: written in full, then renamed into place."""
        token = uuid.uuid4()
        name = f"{round(monotonic() * 1000)}_{token}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f"partial-{token}{PARTIAL_SUFFIX}")
        try:
            with open(partial, "wb") as out:
                out.write(str_to_bytes(dumps(message)))  # type: ignore[no-untyped-call]
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
