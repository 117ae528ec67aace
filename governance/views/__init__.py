"""The privacy officer's web UI: server-rendered pages over the services and selectors.

One module per area (dashboard, requests, lineage, models, audit); ``access`` holds the
role checks every page goes through, ``forms`` the input validation. Views parse, check
the role, call one service or selector and render (STYLE §3.3); business rules stay in
``governance.services``.
"""
