"""LETHE_LOG_FORMAT=json: one JSON object per log line (governance.log.JsonLinesFormatter)."""

from __future__ import annotations

import io
import json
import logging
import runpy
from datetime import datetime
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from governance import settings as lethe_settings
from governance.log import JsonLinesFormatter


def _emit(log_call) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    logger = logging.getLogger("lethe.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        log_call(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_record_is_one_json_object_with_time_level_logger_and_message():
    output = _emit(lambda log: log.warning("erasure %s is %s", 7, "overdue"))

    (line,) = output.splitlines()
    entry = json.loads(line)
    assert entry.pop("time").endswith("+00:00")
    assert entry == {
        "level": "WARNING",
        "logger": "lethe.test.json",
        "message": "erasure 7 is overdue",
        "exc_info": None,
    }


def test_time_is_utc_iso_8601_with_milliseconds():
    entry = json.loads(_emit(lambda log: log.info("tick")))

    parsed = datetime.fromisoformat(entry["time"])
    assert parsed.utcoffset().total_seconds() == 0
    assert len(entry["time"].split(".")[1]) == len("123+00:00")


def test_a_traceback_stays_inside_its_line():
    def fail(log):
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            log.exception("training task %d failed", 3)

    output = _emit(fail)

    (line,) = output.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["message"] == "training task 3 failed"
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert entry["exc_info"].endswith("ValueError: bad\nvalue")


def _settings(monkeypatch, **env):
    for name in ("LETHE_LOG_FORMAT", "LETHE_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(Path(lethe_settings.__file__)))


def test_settings_log_text_by_default_and_json_lines_when_asked(monkeypatch):
    text = _settings(monkeypatch)["LOGGING"]
    json_lines = _settings(monkeypatch, LETHE_LOG_FORMAT="json", LETHE_LOG_LEVEL="debug")["LOGGING"]

    assert text["handlers"]["console"]["formatter"] == "text"
    assert text["root"]["level"] == "INFO"
    assert json_lines["formatters"]["json"]["()"] == "governance.log.JsonLinesFormatter"
    assert json_lines["handlers"]["console"]["formatter"] == "json"
    assert json_lines["root"]["level"] == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value"), [("LETHE_LOG_FORMAT", "xml"), ("LETHE_LOG_LEVEL", "LOUD")]
)
def test_settings_refuse_an_unknown_log_format_or_level(monkeypatch, name, value):
    with pytest.raises(ImproperlyConfigured, match=name):
        _settings(monkeypatch, **{name: value})
