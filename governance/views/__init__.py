"""The privacy officer's web UI: server-rendered pages over the services and selectors.

One module per area (dashboard, requests, lineage, models, audit, reports); ``urls``
routes them, ``access`` holds the page check every page goes through (the ``Action`` it
performs, asked of the one role matrix in ``governance.permissions``) and ``forms`` the
input validation. Views parse, check the permission, call one service or selector and
render (STYLE §3.3); rules stay in ``governance.services`` (writes), ``governance.selectors``
(reads) and the models' guards.
"""
