"""Lethe's Django project and app: lineage, erasure requests, audit trail, API and UI."""
