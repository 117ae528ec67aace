"""Lethe's exact-unlearning engine: S3T (sequence-aware sharded sliced training).

Django-free by design: governance translates its rows into the plain dataclasses and paths
this package takes. Importing it pins the CPU determinism settings before torch loads (see
``unlearning.recipe``).
"""

from __future__ import annotations

from unlearning.recipe import pin_cpu_determinism

pin_cpu_determinism()
