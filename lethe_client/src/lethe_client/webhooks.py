"""Webhook subscriptions: thin methods, the server's answers as they are."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from lethe_client.transport import Transport, _segment


class WebhooksApi(Transport):
    """``/api/v1/webhooks/``: subscriptions, secrets, tests and the delivery log."""

    def list_webhooks(self) -> Any:
        """The caller's subscriptions (auditors: all)."""
        return self._json("GET", "/webhooks/")

    def create_webhook(
        self,
        url: str,
        event_types: Iterable[str],
        *,
        description: str = "",
        active: bool = True,
        **fields: Any,
    ) -> dict[str, Any]:
        """Subscribe ``url``; the answer holds the signing secret, shown this once only."""
        body = {
            "url": url,
            "event_types": list(event_types),
            "description": description,
            "active": active,
            **fields,
        }
        return cast(dict[str, Any], self._json("POST", "/webhooks/", json=body))

    def get_webhook(self, webhook_id: int | str) -> dict[str, Any]:
        """One subscription."""
        return cast(dict[str, Any], self._json("GET", f"/webhooks/{_segment(webhook_id)}/"))

    def update_webhook(self, webhook_id: int | str, **fields: Any) -> dict[str, Any]:
        """Change a subscription's fields (``PATCH``): url, event_types, active, ..."""
        path = f"/webhooks/{_segment(webhook_id)}/"
        return cast(dict[str, Any], self._json("PATCH", path, json=fields))

    def delete_webhook(self, webhook_id: int | str) -> None:
        """Remove a subscription."""
        self.request("DELETE", f"/webhooks/{_segment(webhook_id)}/")

    def rotate_webhook_secret(self, webhook_id: int | str) -> dict[str, Any]:
        """A new signing secret (shown once); the old one stays valid for a grace period."""
        path = f"/webhooks/{_segment(webhook_id)}/rotate-secret/"
        return cast(dict[str, Any], self._json("POST", path))

    def test_webhook(self, webhook_id: int | str) -> dict[str, Any]:
        """Send a ``webhook.test`` event to the subscription."""
        path = f"/webhooks/{_segment(webhook_id)}/test/"
        return cast(dict[str, Any], self._json("POST", path))

    def list_webhook_deliveries(self, webhook_id: int | str, **params: Any) -> Any:
        """The subscription's delivery log: status, attempts, response code, last error."""
        path = f"/webhooks/{_segment(webhook_id)}/deliveries/"
        return self._json("GET", path, params=params)
