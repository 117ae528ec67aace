"""Input validation for the web UI. Each error is attached to the field the user must fix;
templates render it next to that field (and in the summary above the form)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from governance.models import ErasureRequest
from governance.selectors.erasure import Due
from governance.subject_refs import SubjectRefError, subject_ref_clean

Channel = ErasureRequest.Channel
Status = ErasureRequest.Status

# What an officer can record by hand; "api" is what integrations file with.
WEB_CHANNELS = [(c.value, c.label) for c in Channel if c != Channel.API]
# The request list's deadline filter (its URL values) and the deadline state each keeps.
DUE_WINDOWS = [
    ("overdue", "Overdue"),
    ("week", "Due within 7 days"),
    ("later", "Due later"),
]
DUE_STATES = {"overdue": Due.OVERDUE, "week": Due.SOON, "later": Due.OK}


def _clean_subject_ref(value: str) -> str:
    try:
        return subject_ref_clean(value, field="subject reference")
    except SubjectRefError as exc:
        message = str(exc)
        raise forms.ValidationError(message[:1].upper() + message[1:]) from None


class SubjectLookupForm(forms.Form):
    subject_ref = forms.CharField(
        label="Subject reference",
        max_length=200,
        help_text="The identifier your data platform uses for the person.",
        error_messages={"required": "Enter the subject reference to look up."},
    )

    def clean_subject_ref(self) -> str:
        return _clean_subject_ref(self.cleaned_data["subject_ref"])


class RequestFileForm(forms.Form):
    """The confirm step: the subject was looked up and its impact shown; now file it."""

    subject_ref = forms.CharField(
        max_length=200,
        widget=forms.HiddenInput,
        error_messages={"required": "Look up a subject reference first."},
    )

    channel = forms.ChoiceField(
        label="Received by",
        choices=WEB_CHANNELS,
        initial=Channel.WEB,
        error_messages={"invalid_choice": "Choose how the request was received."},
    )
    received_at = forms.DateField(
        label="Date received (optional)",
        required=False,
        help_text="Leave empty for today. The deadline is one month after this date.",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )
    reason = forms.CharField(
        label="Note (optional)",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    # A repeated submission (double click, back button) files the first request again.
    idempotency_key = forms.CharField(max_length=200, required=False, widget=forms.HiddenInput)

    def clean_subject_ref(self) -> str:
        return _clean_subject_ref(self.cleaned_data["subject_ref"])

    def clean_received_at(self) -> date | None:
        value: date | None = self.cleaned_data.get("received_at")
        if value is not None and value > timezone.now().date():
            raise forms.ValidationError("The date received cannot be in the future.")
        return value

    def received_datetime(self) -> datetime | None:
        """The received date as the start of that day in UTC; None means now."""
        value = self.cleaned_data.get("received_at")
        return datetime.combine(value, time.min, tzinfo=UTC) if value else None


def new_file_form(subject_ref: str) -> RequestFileForm:
    return RequestFileForm(
        initial={
            "subject_ref": subject_ref,
            "channel": Channel.WEB,
            "idempotency_key": f"web-{uuid.uuid4()}",
        }
    )


class ApproveForm(forms.Form):
    note = forms.CharField(
        label="Approval note (optional)",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class RejectForm(forms.Form):
    reason = forms.CharField(
        label="Reason for rejection",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Give the reason for rejecting this request."},
    )


class ExtendForm(forms.Form):
    reason = forms.CharField(
        label="Reason for the extension",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Extends the deadline once, by two months (GDPR Art. 12(3)).",
        error_messages={"required": "Give the reason for extending the deadline."},
    )


class RequestFilterForm(forms.Form):
    q = forms.CharField(label="Subject reference contains", required=False, max_length=200)
    status = forms.ChoiceField(
        label="Status", required=False, choices=[("", "Any status"), *Status.choices]
    )
    due = forms.ChoiceField(
        label="Deadline", required=False, choices=[("", "Any deadline"), *DUE_WINDOWS]
    )
    channel = forms.ChoiceField(
        label="Channel", required=False, choices=[("", "Any channel"), *Channel.choices]
    )

    def clean_due(self) -> Due | None:
        return DUE_STATES.get(self.cleaned_data.get("due") or "")


AUDIT_EXACT = ("action", "actor", "object_type", "object_id")


class AuditFilterForm(forms.Form):
    action = forms.CharField(label="Action", required=False, max_length=100)
    actor = forms.CharField(label="Actor", required=False, max_length=200)
    object_type = forms.CharField(label="Object type", required=False, max_length=100)
    object_id = forms.CharField(label="Object id", required=False, max_length=100)
    since = forms.DateField(
        label="From (date)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )
    until = forms.DateField(
        label="To (date, inclusive)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", "The end date is before the start date.")
        return data

    def filters(self) -> dict[str, Any]:
        """The valid filters as ``audit_events_filter`` arguments; the end date is included."""
        data = self.cleaned_data
        exact = {name: data.get(name) or None for name in AUDIT_EXACT}
        since, until = data.get("since"), data.get("until")
        return {
            **exact,
            "since": _day_start(since) if since else None,
            "until": _day_start(until) + timedelta(days=1) if until else None,
        }


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)
