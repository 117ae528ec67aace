"""Governance models: datasets, lineage, erasure requests and the audit trail.

Placeholder until the domain model lands (DESIGN §4). Models keep fields, constraints,
clean() and small properties; writes go through governance.services.
"""

from __future__ import annotations
