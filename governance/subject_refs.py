"""What a data subject's id is: one rule for ingest, erasure intake and every lookup.

An id is compared as its Unicode NFC form, stripped of surrounding white space, so the
composed and decomposed spellings of one name ("José" as U+00E9 or as "e" + U+0301) are
one subject: an erasure of either reaches both. Ids with characters nobody can see or type
(controls, format characters such as zero-width spaces and bidirectional overrides, line
and paragraph separators, lone surrogates) are refused: two ids that look the same must be
the same id.

Ids stored before this rule are not rewritten (two stored spellings could collide). An
operator upgrading a database can list the affected subjects with ``manage.py shell -c
"from governance.subject_refs import subject_refs_not_normal; print(subject_refs_not_normal())"``
and erase or re-ingest them under the normal form.
"""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 200
# Cc control, Cf format (ZWSP, ZWJ, BOM, bidi overrides), Cs surrogate, Zl/Zp separators.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class SubjectRefError(ValueError):
    """A subject id that cannot name one person unambiguously; the message names the problem."""


def subject_ref_clean(value: str, *, field: str = "subject_id") -> str:
    """The id in its one comparable form (NFC, stripped); ``SubjectRefError`` when refused."""
    ref = subject_ref_normal(value.strip(), field=field)
    if not ref:
        raise SubjectRefError(f"{field}: must not be empty")
    if len(ref) > MAX_LENGTH:
        raise SubjectRefError(f"{field}: longer than {MAX_LENGTH} characters")
    return ref


def subject_ref_normal(value: str, *, field: str = "subject_id") -> str:
    """NFC, with invisible characters refused; for lookups, which keep a blank id a 404."""
    if value.isascii() and value.isprintable():
        return value  # the common case, checked in C: ASCII is NFC, and printable is no Cc
    ref = unicodedata.normalize("NFC", value)
    for char in ref:
        if unicodedata.category(char) in INVISIBLE_CATEGORIES:
            raise SubjectRefError(
                f"{field}: contains the invisible or control character U+{ord(char):04X}"
            )
    return ref


def subject_refs_not_normal() -> list[str]:
    """Stored subject ids that are not in the form ``subject_ref_clean`` gives (upgrade check)."""
    from governance.models import Subject

    refs = Subject.objects.values_list("external_ref", flat=True).iterator()
    return [ref for ref in refs if _cleaned_or_none(ref) != ref]


def _cleaned_or_none(ref: str) -> str | None:
    try:
        return subject_ref_clean(ref)
    except SubjectRefError:
        return None
