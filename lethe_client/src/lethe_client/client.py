"""``Client``: typed methods over Lethe's REST API (``/api/v1/``), one per endpoint.

The client adds only what a caller would otherwise write around every call: the token
header, the one error shape turned into ``ApiError``, ``Retry-After`` honoured on a 429,
records pushed from files in batches with per-row rejections mapped back to the file,
idempotency keys on erasure requests, and ``wait=True`` polling to a final status.
Everything else is the server's answer as JSON (``lethe_client.types`` describes it).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from lethe_client import records as _records
from lethe_client.errors import WaitTimeout
from lethe_client.records import PushProgress, PushResult, RejectedRow, SourceRow
from lethe_client.transport import _dumps, _segment
from lethe_client.types import (
    TERMINAL_STATUSES,
    CertificateEnvelope,
    ConfirmationStatus,
    Dataset,
    ErasureRequest,
    ErasureRequestPage,
    ErasureRequestSummary,
    PublicKey,
    PublicKeyListed,
)
from lethe_client.verify import Verification, verify_envelope
from lethe_client.webhooks import WebhooksApi

# The server refuses bodies over LETHE_MAX_UPLOAD_BYTES (32 MiB by default): stay well under.
DEFAULT_BATCH_ROWS = 1000
DEFAULT_BATCH_BYTES = 8 * 1024 * 1024
# How long wait=True polls by default, and how often: the first polls come quickly (a
# model-less erasure completes in well under a second), then back off to at most 5 s.
DEFAULT_WAIT_S = 600.0
POLL_FIRST_S = 0.25
POLL_MAX_S = 5.0

ProgressCallback = Callable[[PushProgress], None]
StatusCallback = Callable[[ErasureRequest], None]


class Client(WebhooksApi):
    """A Lethe API client bound to one server and one API token.

    ``base_url`` is the server's root (``https://lethe.example.org``); ``token`` an API key
    from ``manage.py lethe_user`` or ``POST /api/v1/tokens/`` (sent as
    ``Authorization: Token <key>``). The public-key endpoints need no token. ``timeout`` is
    per HTTP request, in seconds. Use it as a context manager, or call ``close()``.
    """

    # --- service ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Database, broker and worker liveness (``GET health/``)."""
        return cast(dict[str, Any], self._json("GET", "/health/"))

    # --- datasets ---------------------------------------------------------------------------

    def create_dataset(
        self, name: str, labels: Iterable[str] = (), *, task: str = "classification"
    ) -> Dataset:
        """Create a dataset (``POST datasets/``); 409 if the name is taken.

        ``task`` is ``classification`` (text + label, the default), ``generation`` (prompt
        + response; no labels) or ``image_classification`` (image + label).
        """
        body: dict[str, Any] = {"name": name, "task": task}
        if task != "generation":
            body["labels"] = list(labels)
        return cast(Dataset, self._json("POST", "/datasets/", json=body))

    def get_dataset(self, dataset_id: int) -> Dataset:
        """One dataset; a 404 also for one outside an integration account's scope."""
        return cast(Dataset, self._json("GET", f"/datasets/{int(dataset_id)}/"))

    def subject_lineage(self, subject_id: str) -> dict[str, Any]:
        """Which records of ``subject_id`` exist and which model stages read them."""
        return cast(dict[str, Any], self._json("GET", f"/subjects/{_segment(subject_id)}/lineage/"))

    # --- models ------------------------------------------------------------------------------

    def predict(self, model_id: int, inputs: Iterable[str]) -> dict[str, Any]:
        """Labels and scores for texts from a classification model (``POST …/predict/``)."""
        body = {"inputs": list(inputs)}
        return cast(
            dict[str, Any], self._json("POST", f"/models/{int(model_id)}/predict/", json=body)
        )

    def predict_images(self, model_id: int, images: Iterable[bytes]) -> dict[str, Any]:
        """Labels and scores for PNG/JPEG images from an image classifier (sent as base64)."""
        body = {"images": [base64.b64encode(bytes(i)).decode("ascii") for i in images]}
        return cast(
            dict[str, Any], self._json("POST", f"/models/{int(model_id)}/predict/", json=body)
        )

    def generate(
        self,
        model_id: int,
        prompts: Iterable[str | list[dict[str, str]]],
        *,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Text from a generation model (``POST …/generate/``): greedy at temperature 0,
        sampled otherwise (the same seed gives the same text); names the manifest used."""
        body = {
            "inputs": list(prompts),
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
        }
        path = f"/models/{int(model_id)}/generate/"
        return cast(dict[str, Any], self._json("POST", path, json=body))

    # --- records ----------------------------------------------------------------------------

    def push_records(
        self,
        dataset_id: int,
        rows: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = DEFAULT_BATCH_ROWS,
        progress: ProgressCallback | None = None,
    ) -> PushResult:
        """Upsert in-memory rows (``external_id``, ``subject_id``, ``text``, ``label``) in
        batches; rejected rows come back by their position in ``rows``."""
        result = PushResult()
        batch: list[Any] = []
        for row in rows:
            batch.append(dict(row))
            if len(batch) >= batch_size:
                self._push_json(dataset_id, batch, result, progress)
                batch = []
        if batch:
            self._push_json(dataset_id, batch, result, progress)
        return result

    def _push_json(
        self,
        dataset_id: int,
        batch: list[Any],
        result: PushResult,
        progress: ProgressCallback | None,
    ) -> None:
        start = result.rows
        rows = [SourceRow(index=start + i, line=None, value=v) for i, v in enumerate(batch)]
        self._send(dataset_id, rows, "application/json", _dumps(batch), result)
        if progress is not None:
            progress(_progress(result, bytes_read=0, bytes_total=None))

    def push_records_file(
        self,
        dataset_id: int,
        path: str | Path,
        *,
        format: str | None = None,
        batch_size: int = DEFAULT_BATCH_ROWS,
        max_batch_bytes: int = DEFAULT_BATCH_BYTES,
        progress: ProgressCallback | None = None,
    ) -> PushResult:
        """Upsert every record of a JSON, JSONL or CSV file, ``batch_size`` rows at a time.

        The format comes from the suffix (``.json``, ``.jsonl``/``.ndjson``, ``.csv``)
        unless ``format`` names it. ``progress`` is called after each batch. Rows the
        server (or, for a line that is not JSON, the client) rejects are in
        ``result.rejected`` with their index and line in the file and the field at fault;
        the other rows are stored. Pushing the same file again is harmless: records are
        upserted on ``(dataset, external_id)``. A whole batch refused (a CSV header naming
        an unknown column) raises ``ApiError``; the batches before it stay stored.
        """
        source = Path(path)
        fmt = _records.file_format(source, format)
        total = source.stat().st_size
        result = PushResult()
        for batch, unreadable in _records.batches(
            source, fmt, batch_size=batch_size, max_batch_bytes=max_batch_bytes
        ):
            result.rejected.extend(
                RejectedRow(index=r.index, field=None, error=r.error or "", line=r.line)
                for r in unreadable
            )
            result.rows += len(unreadable)
            if batch.rows:
                self._send(dataset_id, batch.rows, batch.content_type, batch.body, result)
            if progress is not None:
                progress(_progress(result, bytes_read=batch.bytes_read, bytes_total=total))
        result.rejected.sort(key=lambda r: r.index)
        return result

    def _send(
        self,
        dataset_id: int,
        rows: list[SourceRow],
        content_type: str,
        body: bytes,
        result: PushResult,
    ) -> None:
        """POST one batch and fold its counts, and its rejections mapped to the file, in."""
        answer = self._json(
            "POST",
            f"/datasets/{int(dataset_id)}/records/",
            content=body,
            headers={"Content-Type": content_type},
        )
        result.batches += 1
        result.rows += len(rows)
        result.created += int(answer["created"])
        result.updated += int(answer["updated"])
        result.unchanged += int(answer["unchanged"])
        for rejected in answer["rejected"]:
            row = rows[int(rejected["index"])]
            result.rejected.append(
                RejectedRow(
                    index=row.index,
                    field=rejected.get("field"),
                    error=str(rejected.get("error", "")),
                    line=row.line,
                    external_id=row.external_id,
                )
            )

    # --- erasure requests -------------------------------------------------------------------

    def create_erasure_request(
        self,
        subject_id: str,
        reason: str = "",
        *,
        channel: str | None = None,
        received_at: str | None = None,
        idempotency_key: str | None = None,
        wait: bool = False,
        timeout: float = DEFAULT_WAIT_S,
        on_status: StatusCallback | None = None,
    ) -> ErasureRequest:
        """File an erasure request for ``subject_id`` (``POST erasure-requests/``).

        Always sent with an ``Idempotency-Key`` (a new UUID unless given): pass your own,
        stored with the job that asked, and a retry after a lost answer gets the same
        request back instead of a second one. ``wait=True`` then polls until the request
        is completed, failed or rejected (an officer, or auto-approval for integration
        accounts, must approve it first), raising ``WaitTimeout`` after ``timeout`` s.
        """
        body: dict[str, Any] = {"subject_id": subject_id, "reason": reason}
        if channel is not None:
            body["channel"] = channel
        if received_at is not None:
            body["received_at"] = received_at
        key = idempotency_key or str(uuid.uuid4())
        created = cast(
            ErasureRequest,
            self._json("POST", "/erasure-requests/", json=body, headers={"Idempotency-Key": key}),
        )
        if not wait:
            return created
        return self.wait_for_erasure_request(created["id"], timeout=timeout, on_status=on_status)

    def get_erasure_request(self, request_id: int) -> ErasureRequest:
        """A request in full: status, deadline, impact preview, history."""
        return cast(ErasureRequest, self._json("GET", f"/erasure-requests/{int(request_id)}/"))

    def list_erasure_requests(
        self,
        *,
        status: str | None = None,
        subject_id: str | None = None,
        overdue: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> ErasureRequestPage:
        """One page of requests: ``count`` (all pages) and ``results``."""
        params = {
            "status": status,
            "subject_id": subject_id,
            "overdue": overdue,
            "limit": limit,
            "offset": offset,
        }
        return cast(ErasureRequestPage, self._json("GET", "/erasure-requests/", params=params))

    def iter_erasure_requests(
        self,
        *,
        status: str | None = None,
        subject_id: str | None = None,
        overdue: bool | None = None,
        page_size: int = 100,
    ) -> Iterator[ErasureRequestSummary]:
        """Every matching request, page after page."""
        offset = 0
        while True:
            page = self.list_erasure_requests(
                status=status, subject_id=subject_id, overdue=overdue, limit=page_size,
                offset=offset,
            )  # fmt: skip
            yield from page["results"]
            offset += len(page["results"])
            if not page["results"] or offset >= page["count"]:
                return

    def approve_erasure_request(
        self,
        request_id: int,
        note: str = "",
        *,
        wait: bool = False,
        timeout: float = DEFAULT_WAIT_S,
        on_status: StatusCallback | None = None,
    ) -> ErasureRequest:
        """Approve a received request (privacy officers; 403 ``four_eyes`` for the officer
        who filed it when four-eyes is on). Execution is queued; ``wait=True`` polls on."""
        path = f"/erasure-requests/{int(request_id)}/approve/"
        approved = cast(ErasureRequest, self._json("POST", path, json={"note": note}))
        if not wait:
            return approved
        return self.wait_for_erasure_request(approved["id"], timeout=timeout, on_status=on_status)

    def reject_erasure_request(self, request_id: int, reason: str) -> ErasureRequest:
        """Refuse a received request, saying why (privacy officers)."""
        path = f"/erasure-requests/{int(request_id)}/reject/"
        return cast(ErasureRequest, self._json("POST", path, json={"reason": reason}))

    def extend_erasure_request(self, request_id: int, reason: str) -> ErasureRequest:
        """Extend the deadline once by two months, saying why (privacy officers)."""
        path = f"/erasure-requests/{int(request_id)}/extend/"
        return cast(ErasureRequest, self._json("POST", path, json={"reason": reason}))

    def retry_erasure_request(self, request_id: int) -> ErasureRequest:
        """Queue a failed request's execution again (privacy officers)."""
        path = f"/erasure-requests/{int(request_id)}/retry/"
        return cast(ErasureRequest, self._json("POST", path))

    def wait_for_erasure_request(
        self,
        request_id: int,
        *,
        timeout: float = DEFAULT_WAIT_S,
        on_status: StatusCallback | None = None,
    ) -> ErasureRequest:
        """Poll until the request is completed, failed or rejected; return it as it ends.

        ``on_status`` hears each status change. Raises ``WaitTimeout`` (holding the last
        answer) when ``timeout`` seconds pass first; the request itself carries on.
        """
        deadline = time.monotonic() + timeout
        interval = POLL_FIRST_S
        seen: str | None = None
        while True:
            current = self.get_erasure_request(request_id)
            if current["status"] != seen:
                seen = current["status"]
                if on_status is not None:
                    on_status(current)
            if current["status"] in TERMINAL_STATUSES:
                return current
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(
                    f"erasure request {request_id} is still {current['status']} after "
                    f"{timeout:g} s",
                    current,
                )
            time.sleep(min(interval, left))
            interval = min(interval * 2, POLL_MAX_S)

    def confirm_erasure(
        self, request_id: int, status: ConfirmationStatus, detail: str = ""
    ) -> dict[str, Any]:
        """A recipient's Art. 19 confirmation that it erased its own copy (``erased``,
        ``not_held`` or ``failed``), for subscriptions marked ``requires_confirmation``."""
        path = f"/erasure-requests/{int(request_id)}/confirmations/"
        body = {"status": status, "detail": detail}
        return cast(dict[str, Any], self._json("POST", path, json=body))

    # --- certificates -----------------------------------------------------------------------

    def get_certificate(self, request_id: int) -> CertificateEnvelope:
        """The signed envelope exactly as issued (404 until the request completes)."""
        path = f"/erasure-requests/{int(request_id)}/certificate/"
        return cast(CertificateEnvelope, self._json("GET", path))

    def get_certificate_raw(self, request_id: int) -> bytes:
        """The envelope's bytes as served, to store unchanged next to the erasure's record."""
        path = f"/erasure-requests/{int(request_id)}/certificate/"
        return self.request("GET", path).content

    def download_certificate_pdf(self, request_id: int, path: str | Path | None = None) -> bytes:
        """The certificate rendered for people (not signed itself); written to ``path`` if given."""
        url = f"/erasure-requests/{int(request_id)}/certificate/"
        pdf = self.request(
            "GET", url, params={"format": "pdf"}, headers={"Accept": "application/pdf"}
        ).content
        if path is not None:
            Path(path).write_bytes(pdf)
        return pdf

    def public_key(self) -> PublicKey:
        """The key signing now (public, no token needed)."""
        return cast(PublicKey, self._json("GET", "/certificates/public-key/"))

    def public_keys(self) -> list[PublicKeyListed]:
        """Every key that ever signed here, oldest first, ``current`` marking today's."""
        return cast(list[PublicKeyListed], self._json("GET", "/certificates/public-keys/"))

    def public_key_pem_for(self, envelope: Mapping[str, Any]) -> str:
        """The PEM of the key ``envelope`` names, from the server's list (ValueError if none).

        Fetched from the server being checked: keep a copy obtained independently for a
        check that does not trust it (docs/certificates.md).
        """
        wanted = envelope.get("signature", {}).get("key_id")
        for key in self.public_keys():
            if key["key_id"] == wanted:
                return key["public_key_pem"]
        raise ValueError(f"signature.key_id: {wanted!r} never signed on {self.base_url}")

    def verify_certificate_online(self, envelope: Mapping[str, Any]) -> dict[str, Any]:
        """The server's check: the signature with the key it names, and every claim
        re-checked against lineage (``POST certificates/verify/``)."""
        return cast(dict[str, Any], self._json("POST", "/certificates/verify/", json=envelope))

    @staticmethod
    def verify_certificate(envelope: Any, public_key_pem: str | bytes) -> Verification:
        """Offline: the signature against ``public_key_pem``; no request is made."""
        return verify_envelope(envelope, public_key_pem)


# --- helpers ----------------------------------------------------------------------------


def _progress(result: PushResult, *, bytes_read: int, bytes_total: int | None) -> PushProgress:
    return PushProgress(
        rows_sent=result.rows,
        batches=result.batches,
        bytes_read=bytes_read,
        bytes_total=bytes_total,
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        rejected=len(result.rejected),
    )
