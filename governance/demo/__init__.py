"""``manage.py demo``: the whole product on one machine, through the real services.

The walkthrough behind ``make demo``, in order:

1. migrate the database (SQLite in ``var/`` unless ``DATABASE_URL`` says otherwise);
2. create (or reuse) the demo accounts: a privacy officer and an auditor who sign in with
   passwords, an integration account with an API token, and an ML engineer;
3. create the dataset ``demo-support`` and ingest the sample support tickets with
   ``validate_rows`` and ``records_upsert``, as the integration account;
4. create the S3T model ``demo`` and train it: ``model_train`` partitions the records and
   queues one task per (shard, sequence); this process then runs the tasks itself with
   ``training_task_run``, showing a progress bar (the queued copies the background worker
   picks up later find their tasks done and do nothing);
5. predict held-out messages and measure accuracy;
6. file an erasure request for the subject with the most records, show its impact
   preview, approve it and execute it inline with ``erasure_request_execute`` (the copy
   that approval queued for the worker finds the request completed and does nothing);
7. print the certificate and check its signature and claims, then predict again;
8. print the logins. The management command then serves the UI and API with a background
   worker (``manage.py serve``) unless ``--no-serve``.

A second run reuses what the first created (and says so): no retraining, a new erasure for
the next subject. ``--reset`` deletes the demo's files under ``var/`` first; it refuses when
the database is not a SQLite file under ``var/`` (a PostgreSQL database is never dropped).
Passwords and the API token are kept in ``var/demo-credentials.txt`` (mode 0600) so that
they stay the same from run to run.

One module per step: ``database``, ``accounts``, ``data``, ``training`` (with ``progress``),
``predictions``, ``erasure``, ``certificate`` and ``serve``; ``run`` calls them in order,
``state`` keeps the lock and the credentials, ``console`` prints. The steps call services
and selectors only; the demo's own writes (``--reset``, its accounts' passwords) are
``governance.services.demo``. Torch is imported lazily by the engine, never at import time
of this package.
"""

from __future__ import annotations

from governance.demo.accounts import DemoAccount
from governance.demo.run import Demo, DemoResult, run_demo
from governance.demo.serve import port_free
from governance.demo.state import credentials_path, demo_lock, var_dir
from governance.services.demo import DemoError, reset_targets

__all__ = [
    "Demo",
    "DemoAccount",
    "DemoError",
    "DemoResult",
    "credentials_path",
    "demo_lock",
    "port_free",
    "reset_targets",
    "run_demo",
    "var_dir",
]
