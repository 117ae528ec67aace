"""The REST API v1 (``/api/v1/``): one module per resource, routes in ``api.urls``.

Every view parses its input with a strict serializer, checks one ``permissions.Action``,
calls one service or selector and renders a documented body; every error comes out as
``{"error": {"code", "message", "details"}}`` (``governance.errors``).
"""
