"""``lethe``: the client on the command line, for data platforms' jobs and for auditors.

Configuration comes from ``--url`` / ``--token`` or ``LETHE_URL`` / ``LETHE_TOKEN``. Answers
are printed to stdout as JSON (for ``jq`` and scripts); progress and explanations go to
stderr. Exit status: 0 success; 1 the API refused or a check failed; 2 bad usage;
3 ``records push`` stored the file but rejected some rows; 4 ``--wait`` timed out.

``lethe certificate verify`` is offline: it needs the envelope and a public key PEM, no
server and no token.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lethe_client.errors import ApiError, LetheError, WaitTimeout
from lethe_client.verify import verify_file

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ROWS_REJECTED = 3
EXIT_TIMEOUT = 4

Handler = Callable[[argparse.Namespace], int]

if TYPE_CHECKING:
    _Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns (and, as a console script, exits with) its status."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ApiError as exc:
        _err(f"error: {exc.status} {exc.code}: {exc.message}")
        if exc.details:
            _err(f"details: {json.dumps(exc.details, ensure_ascii=False)}")
        return EXIT_FAILED
    except WaitTimeout as exc:
        _err(f"timeout: {exc}")
        _out(exc.last)
        return EXIT_TIMEOUT
    except (LetheError, ValueError, OSError) as exc:
        _err(f"error: {exc}")
        return EXIT_FAILED


# --- commands ---------------------------------------------------------------------------


def _records_push(args: argparse.Namespace) -> int:
    def progress(p: Any) -> None:
        share = f" ({100 * p.bytes_read // p.bytes_total}%)" if p.bytes_total else ""
        _err(
            f"batch {p.batches}: {p.rows_sent} rows sent{share}, {p.created} created, "
            f"{p.updated} updated, {p.unchanged} unchanged, {p.rejected} rejected"
        )

    with _client(args) as client:
        result = client.push_records_file(
            args.dataset,
            args.file,
            format=args.format,
            batch_size=args.batch_size,
            progress=None if args.quiet else progress,
        )
    for row in result.rejected:
        where = f"line {row.line}" if row.line is not None else f"row {row.index}"
        name = f" ({row.external_id})" if row.external_id else ""
        _err(f"rejected {where}{name}: {row.field or 'row'}: {row.error}")
    _out(
        {
            "rows": result.rows,
            "batches": result.batches,
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected": [vars(row) for row in result.rejected],
        }
    )
    return EXIT_OK if result.ok else EXIT_ROWS_REJECTED


def _erase(args: argparse.Namespace) -> int:
    def on_status(req: Any) -> None:
        _err(f"erasure request {req['id']}: {req['status']}")

    with _client(args) as client:
        req = client.create_erasure_request(
            args.subject,
            args.reason,
            channel=args.channel,
            idempotency_key=args.idempotency_key,
        )
        _err(f"erasure request {req['id']} filed: {req['status']}, due {req['deadline']}")
        if args.approve and req["status"] == "received":
            req = client.approve_erasure_request(req["id"], args.note)
            _err(f"erasure request {req['id']} approved")
        if args.wait:
            req = client.wait_for_erasure_request(
                req["id"], timeout=args.timeout_wait, on_status=on_status
            )
        if args.certificate and req["status"] == "completed":
            Path(args.certificate).write_bytes(client.get_certificate_raw(req["id"]))
            _err(f"certificate written to {args.certificate}")
    _out(req)
    if args.wait and req["status"] != "completed":
        _err(f"erasure request {req['id']} ended {req['status']}: {req.get('error') or ''}")
        return EXIT_FAILED
    return EXIT_OK


def _erasure_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _out(client.get_erasure_request(args.request_id))
    return EXIT_OK


def _erasure_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _out(list(client.iter_erasure_requests(status=args.status, subject_id=args.subject)))
    return EXIT_OK


def _erasure_approve(args: argparse.Namespace) -> int:
    with _client(args) as client:
        req = client.approve_erasure_request(
            args.request_id, args.note, wait=args.wait, timeout=args.timeout_wait
        )
    _out(req)
    return EXIT_OK if not args.wait or req["status"] == "completed" else EXIT_FAILED


def _certificate_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.pdf:
            data = client.download_certificate_pdf(args.request_id)
        else:
            data = client.get_certificate_raw(args.request_id)
    if args.output:
        Path(args.output).write_bytes(data)
        _err(f"written to {args.output}")
    elif args.pdf:
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(data.decode("utf-8") + "\n")
    return EXIT_OK


def _certificate_verify(args: argparse.Namespace) -> int:
    check = verify_file(args.envelope, args.public_key)
    if not check.ok:
        _err(f"certificate NOT verified: {check.reason}")
        return EXIT_FAILED
    body = check.certificate or {}
    print(
        f"Signature OK {check.key_id}: certificate {body.get('certificate_id')} for request "
        f"{body.get('request_id')}, {len(body.get('records_erased') or [])} records erased"
    )
    return EXIT_OK


def _public_key(args: argparse.Namespace) -> int:
    with _client(args) as client:
        pem = client.public_key()["public_key_pem"]
    if args.output:
        Path(args.output).write_text(pem, encoding="ascii")
        _err(f"written to {args.output}")
    else:
        sys.stdout.write(pem)
    return EXIT_OK


def _datasets_create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _out(client.create_dataset(args.name, args.label))
    return EXIT_OK


def _datasets_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _out(client.get_dataset(args.dataset_id))
    return EXIT_OK


def _webhooks_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _out(client.list_webhooks())
    return EXIT_OK


def _webhooks_create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _out(client.create_webhook(args.url, args.event, description=args.description))
    return EXIT_OK


def _webhooks_rotate(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _out(client.rotate_webhook_secret(args.webhook_id))
    return EXIT_OK


def _webhooks_deliveries(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _out(client.list_webhook_deliveries(args.webhook_id))
    return EXIT_OK


# --- plumbing ---------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    """A Client from the flags, else LETHE_URL / LETHE_TOKEN; usage error without a URL."""
    from lethe_client.client import Client  # httpx only for the commands that go online

    url = args.url or os.environ.get("LETHE_URL")
    if not url:
        raise LetheError("no server: pass --url or set LETHE_URL")
    token = args.token or os.environ.get("LETHE_TOKEN")
    return Client(url, token, timeout=args.timeout)


def _out(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lethe", description="Lethe API client (LETHE_URL, LETHE_TOKEN)."
    )
    parser.add_argument("--url", help="server root, e.g. https://lethe.example.org (LETHE_URL)")
    parser.add_argument("--token", help="API token (LETHE_TOKEN)")
    parser.add_argument("--timeout", type=float, default=30.0, help="per HTTP request, seconds")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _records_parser(commands)
    _erase_parser(commands)
    _erasure_parser(commands)
    _certificate_parser(commands)
    _datasets_parser(commands)
    _webhooks_parser(commands)
    return parser


def _records_parser(commands: _Commands) -> None:
    records = commands.add_parser("records", help="push records").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    push = records.add_parser("push", help="upsert a JSON, JSONL or CSV file in batches")
    push.add_argument("file", type=Path)
    push.add_argument("--dataset", type=int, required=True, help="dataset id")
    push.add_argument("--format", choices=["json", "jsonl", "csv"], help="default: the suffix")
    push.add_argument("--batch-size", type=int, default=1000)
    push.add_argument("--quiet", action="store_true", help="no progress lines")
    push.set_defaults(handler=_records_push)


def _add_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="poll until completed/failed/rejected")
    parser.add_argument(
        "--wait-timeout", dest="timeout_wait", type=float, default=600.0, help="seconds"
    )


def _erase_parser(commands: _Commands) -> None:
    erase = commands.add_parser("erase", help="file an erasure request for a data subject")
    erase.add_argument("subject", help="the data subject's id")
    erase.add_argument("--reason", default="", help="recorded with the request")
    erase.add_argument("--channel", choices=["api", "web", "email", "letter"])
    erase.add_argument("--idempotency-key", help="reuse to make a retried command safe")
    erase.add_argument("--approve", action="store_true", help="approve it too (officers)")
    erase.add_argument("--note", default="", help="the approval's note")
    erase.add_argument("--certificate", type=Path, help="write the signed envelope here")
    _add_wait(erase)
    erase.set_defaults(handler=_erase)


def _erasure_parser(commands: _Commands) -> None:
    erasure = commands.add_parser("erasure", help="read and decide erasure requests")
    actions = erasure.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = actions.add_parser("get", help="one request in full")
    get.add_argument("request_id", type=int)
    get.set_defaults(handler=_erasure_get)
    listing = actions.add_parser("list", help="every request matching the filters")
    listing.add_argument("--status")
    listing.add_argument("--subject")
    listing.set_defaults(handler=_erasure_list)
    approve = actions.add_parser("approve", help="approve a received request (officers)")
    approve.add_argument("request_id", type=int)
    approve.add_argument("--note", default="")
    _add_wait(approve)
    approve.set_defaults(handler=_erasure_approve)


def _certificate_parser(commands: _Commands) -> None:
    certificate = commands.add_parser("certificate", help="deletion certificates")
    actions = certificate.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = actions.add_parser("get", help="a completed request's signed envelope (or --pdf)")
    get.add_argument("request_id", type=int)
    get.add_argument("--pdf", action="store_true")
    get.add_argument("-o", "--output", type=Path)
    get.set_defaults(handler=_certificate_get)
    verify = actions.add_parser("verify", help="check an envelope offline with a public key")
    verify.add_argument("envelope", type=Path)
    verify.add_argument("--public-key", type=Path, required=True, help="Ed25519 public key PEM")
    verify.set_defaults(handler=_certificate_verify)
    key = actions.add_parser("public-key", help="the server's current public key PEM")
    key.add_argument("-o", "--output", type=Path)
    key.set_defaults(handler=_public_key)


def _datasets_parser(commands: _Commands) -> None:
    datasets = commands.add_parser("datasets", help="create and read datasets")
    actions = datasets.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create")
    create.add_argument("name")
    create.add_argument("--label", action="append", required=True, help="repeat per label")
    create.set_defaults(handler=_datasets_create)
    get = actions.add_parser("get")
    get.add_argument("dataset_id", type=int)
    get.set_defaults(handler=_datasets_get)


def _webhooks_parser(commands: _Commands) -> None:
    webhooks = commands.add_parser("webhooks", help="webhook subscriptions")
    actions = webhooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list").set_defaults(handler=_webhooks_list)
    create = actions.add_parser("create")
    create.add_argument("url")
    create.add_argument("--event", action="append", required=True, help="repeat per type")
    create.add_argument("--description", default="")
    create.set_defaults(handler=_webhooks_create)
    for name, handler in (
        ("rotate-secret", _webhooks_rotate),
        ("deliveries", _webhooks_deliveries),
    ):
        action = actions.add_parser(name)
        action.add_argument("webhook_id")
        action.set_defaults(handler=handler)


if __name__ == "__main__":
    sys.exit(main())
