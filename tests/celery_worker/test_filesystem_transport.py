"""The embedded broker writes each message atomically: a polling worker never reads half of one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from kombu.transport import filesystem

from celery_worker import filesystem_transport
from celery_worker.celery import app


def _connection(tmp_path: Path, transport: Any) -> Connection:
    folders = {name: tmp_path / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    return Connection(
        transport=transport,
        transport_options={
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "processed_folder": str(folders["processed"]),
            "control_folder": str(folders["control"]),
            "store_processed": False,
        },
    )


def _visible(channel: Any, queue: str) -> list[str]:
    """What a polling consumer would pick up for ``queue`` (kombu's own filter)."""
    return [n for n in os.listdir(channel.data_folder_in) if n.partition(".")[2] == f"{queue}.msg"]


def test_a_message_appears_only_when_complete(tmp_path: Path, monkeypatch) -> None:
    connection = _connection(tmp_path, filesystem_transport.Transport)
    channel = connection.channel()
    payload = {"body": "x" * 10_000, "headers": {"task": "erase"}}
    seen: list[tuple[list[str], int]] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        # The moment before the message becomes visible: nothing visible yet, all written.
        seen.append((_visible(channel, "control"), os.path.getsize(src)))
        real_replace(src, dst)

    monkeypatch.setattr(filesystem_transport.os, "replace", replace)
    channel._put("control", payload)

    assert len(seen) == 1, "the message was not renamed into place"
    visible_before, written = seen[0]
    assert visible_before == []
    assert written == len(filesystem_transport.dumps(payload).encode())
    assert channel._get("control") == payload
    assert os.listdir(channel.data_folder_in) == []  # no partial file left behind


def test_kombus_own_put_shows_a_message_before_it_is_written(tmp_path: Path, monkeypatch) -> None:
    """Why the subclass exists: the stock transport names the file before writing it."""
    connection = _connection(tmp_path, filesystem.Transport)
    channel = connection.channel()
    seen: list[list[int]] = []
    real_lock = filesystem.lock

    def lock(file: Any, flags: int) -> None:  # after open(), before write()
        queue = tmp_path / "queue"
        seen.append([os.path.getsize(queue / name) for name in _visible(channel, "control")])
        real_lock(file, flags)

    monkeypatch.setattr(filesystem, "lock", lock)
    channel._put("control", {"body": "x"})

    assert seen[0] == [0]  # visible to a consumer, and empty


def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    connection = _connection(tmp_path, filesystem_transport.Transport)
    channel = connection.channel()

    def replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(filesystem_transport.os, "replace", replace)
    with pytest.raises(filesystem_transport.ChannelError):
        channel._put("control", {"body": "x"})
    assert os.listdir(channel.data_folder_in) == []


def test_the_embedded_default_uses_it(settings) -> None:
    if settings.CELERY_BROKER_URL != "filesystem://":
        pytest.skip("a broker URL is set: the embedded transport is not in use")
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, filesystem_transport.Transport)
