"""What the demo serves and how to reach it: the port check made before minutes of
training, and the logins printed last (the command then runs ``manage.py serve``)."""

from __future__ import annotations

import contextlib
import socket

from django.urls import NoReverseMatch, reverse

from governance.demo.accounts import DemoAccount
from governance.demo.console import Console


def port_free(addrport: str) -> bool:
    """Whether ``host:port`` can be bound now (checked before minutes of training)."""
    host, _, port = addrport.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError:
            return False
    return True


def logins_print(
    console: Console, *, accounts: dict[str, DemoAccount], model_id: int, base_url: str
) -> None:
    """Where the UI and API are, the people's logins, the token and a request to try."""
    officer, auditor = accounts["officer"], accounts["auditor"]
    integration = accounts["integration"]
    url = base_url
    pairs: list[tuple[str, object]] = [
        ("web UI and API", f"{url}  (API under /api/v1/, OpenAPI at /api/v1/schema/)")
    ]
    with contextlib.suppress(NoReverseMatch):  # the web UI's sign-in page, if any
        pairs.append(("sign in at", url.rstrip("/") + reverse("login")))
    console.fields(
        [
            *pairs,
            ("privacy officer", f"{officer.username} / {officer.password}"),
            ("auditor", f"{auditor.username} / {auditor.password}"),
            ("API token", f"{integration.token}  ({integration.username}, integration role)"),
            (
                "try",
                f'curl -H "Authorization: Token {integration.token}" '
                "-H 'Content-Type: application/json' \\\n"
                f'  -d \'{{"inputs": ["my parcel never arrived"]}}\' '
                f"{url}api/v1/models/{model_id}/predict/",
            ),
        ]
    )
