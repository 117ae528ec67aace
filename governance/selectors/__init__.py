"""Reads: one module per domain, each the single home of the rules it applies.

Selectors never write. Views, the API, services and the demo call them instead of
repeating a query: ``manifests.manifest_latest`` is the only definition of "the manifest in
force", ``erasure.erasure_requests_visible`` the only one of who sees which request, and
``ErasureRequestQuerySet.overdue`` (used through ``erasure``) the only one of "overdue".
"""
