"""The certificate as a PDF for people: a rendering of the signed JSON, not a second proof.

It renders any body without failing (the body's shape is the caller's), so known fields get
labels and a fixed place and anything else is shown under its own key. The signed JSON is
authoritative; the PDF ends with how to verify it.
"""

from __future__ import annotations

import json
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from governance.pdf import FooterPDF, pdf_table, pdf_text

_REQUEST_FIELDS = {
    "certificate_id": "Certificate id",
    "request_id": "Request id",
    "subject_ref": "Subject reference",
    "issuer": "Issuer",
}
_TIME_FIELDS = {
    "received_at": "Request received",
    "approved_at": "Approved",
    "executed_at": "Erasure executed",
    "issued_at": "Certificate issued",
}
_RECORD_FIELDS = {
    "records_found": "Records found",
    "records_erased": "Records erased",
    "image_objects_deleted": "Image objects deleted",
}
_SIGNATURE_FIELDS = {"signing_key_id": "Signing key id (in body)"}
_BODY_SECTIONS = (
    ("Request", _REQUEST_FIELDS),
    ("Timeline (UTC)", _TIME_FIELDS),
    ("Records", _RECORD_FIELDS),
)
_KNOWN_BODY_KEYS = frozenset(
    {"models", "audit_chain_head"}.union(*(f for _, f in _BODY_SECTIONS), _SIGNATURE_FIELDS)
)
_MODEL_HEAD_KEYS = frozenset({"model_id", "name", "generation"})
_MODEL_FIELDS = {
    "manifest_before": "Manifest before",
    "manifest_after": "Manifest after",
    "serving_depth_after": "Serving depth after",
    "i2_check": "I2 check (serving)",
}
_MANIFEST_KEYS = {"version", "digest"}
_STAGE_COLUMNS = (
    ("id", "Stage", 14),
    ("shard", "Shard", 13),
    ("prefix", "Prefix", 18),
    ("sequence", "Sequence", 20),
    ("position", "Position", 17),
    ("tensor_digest", "Tensor digest", 50),
    ("destroyed_at", "Destroyed at", 48),
)
_LABEL_WIDTH = 52  # mm; the value column takes the rest of the line
_INTRO = (
    "A rendering of a signed erasure certificate, for people to read. The signed JSON "
    "certificate is authoritative; see How to verify at the end."
)
_HOW_TO_VERIFY = (
    "Fetch the signed JSON certificate (GET /api/v1/erasure-requests/<request id>/"
    "certificate/); this PDF only renders it. Serialise its "
    '"certificate" object as canonical JSON (keys sorted, separators "," and ":" with no '
    "spaces, UTF-8, non-ASCII characters unescaped); fetch the public key from GET "
    "/api/v1/certificates/public-key/ and check that its key id (ed25519: followed by the "
    "first 16 hex digits of SHA-256 over the raw 32-byte key) equals the key id above; then "
    "verify the base64-decoded signature value over the canonical bytes with Ed25519, e.g. "
    "openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in body.bin -sigfile sig.bin. "
    "Characters outside Latin-1 are transliterated or shown as <U+XXXX> in this PDF only. "
    "Details: docs/certificates.md."
)


def certificate_pdf(envelope: dict[str, Any]) -> bytes:
    """A human-readable PDF of a signed certificate; renders any body without failing.

    Core fonts only (no font files to ship), so text is reduced to Latin-1 by ``pdf_text``.
    """
    envelope = envelope if isinstance(envelope, dict) else {}
    body = envelope.get("certificate")
    body = body if isinstance(body, dict) else {}
    signature = envelope.get("signature")
    signature = signature if isinstance(signature, dict) else {}

    pdf = FooterPDF(format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_title("Certificate of erasure")
    if "certificate_id" in body:
        pdf.footer_text = pdf_text(f"Certificate {_display(body['certificate_id'])}  -  ")
    pdf.add_page()
    pdf.set_font("helvetica", "B", 18)
    pdf.cell(0, 10, "Certificate of erasure", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _paragraph(pdf, _INTRO, size=8)

    for title, fields in _BODY_SECTIONS:
        if present := [key for key in fields if key in body]:
            _heading(pdf, title)
        for key in present:
            _field(pdf, fields[key], body[key], mono=key == "records_erased")
    _models_render(pdf, body.get("models"))
    _heading(pdf, "Audit chain head at issue")
    _mapping_render(pdf, body.get("audit_chain_head"), labels={"seq": "Sequence", "hash": "Hash"})
    if others := [key for key in body if key not in _KNOWN_BODY_KEYS]:
        _heading(pdf, "Other fields")
        for key in others:
            _field(pdf, str(key), body[key])
    _heading(pdf, "Signature")
    if not signature:
        _paragraph(pdf, "This certificate carries no signature.")
    _field(pdf, "Algorithm", signature.get("algorithm", "-"))
    _field(pdf, "Key id", signature.get("key_id", "-"), mono=True)
    if "signing_key_id" in body:
        _field(pdf, _SIGNATURE_FIELDS["signing_key_id"], body["signing_key_id"], mono=True)
    _field(pdf, "Signature value (base64)", signature.get("value", "-"), mono=True, wide=True)
    _heading(pdf, "How to verify")
    _paragraph(pdf, _HOW_TO_VERIFY)
    return bytes(pdf.output())


def _models_render(pdf: FPDF, models: Any) -> None:
    _heading(pdf, "Models affected")
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        if models is not None:
            _field(pdf, "models", models)
        return
    if not models:
        _paragraph(pdf, "No trained model had read these records; no model action was needed.")
    for model in models:
        _subheading(
            pdf,
            f"Model {_display(model.get('name', '?'))} (id {_display(model.get('model_id', '?'))}"
            f", generation {_display(model.get('generation', '?'))})",
        )
        for key, label in _MODEL_FIELDS.items():
            if key in model:
                _field(pdf, label, _model_value(key, model[key]), mono=key.startswith("manifest"))
        _stages_render(pdf, model.get("stages_deactivated"))
        known = _MODEL_HEAD_KEYS | _MODEL_FIELDS.keys() | {"stages_deactivated"}
        for key in (k for k in model if k not in known):
            _field(pdf, str(key), model[key])


def _model_value(key: str, value: Any) -> Any:
    if key.startswith("manifest") and isinstance(value, dict) and value.keys() == _MANIFEST_KEYS:
        return f"version {_display(value['version'])}\n{_display(value['digest'])}"
    if key == "serving_depth_after" and isinstance(value, dict):
        return "; ".join(f"shard {_display(s)}: depth {_display(d)}" for s, d in value.items())
    return value


def _stages_render(pdf: FPDF, stages: Any) -> None:
    if stages is None:
        return
    if not isinstance(stages, list) or not all(isinstance(s, dict) for s in stages):
        _field(pdf, "Stages deactivated", stages)
        return
    _field(pdf, "Stages destroyed", len(stages))
    if not stages:
        return

    def text_of(stage: dict[str, Any], key: str) -> str:
        text = _display(stage.get(key, "-"))
        return _shorten(text) if key == "tensor_digest" else text

    pdf_table(pdf, _STAGE_COLUMNS, stages, text_of, line_height=4)
    pdf.ln(1)
    known = {key for key, _, _ in _STAGE_COLUMNS}
    for stage in stages:
        for key in (k for k in stage if k not in known):
            _field(pdf, f"Stage {_display(stage.get('id', '?'))}: {key}", stage[key])


def _mapping_render(pdf: FPDF, value: Any, *, labels: dict[str, str]) -> None:
    if not isinstance(value, dict):
        _field(pdf, "Value", value if value is not None else "-")
        return
    # Labelled keys first, in the labels' order: the JSON copy has them sorted by name.
    for key in [k for k in labels if k in value] + [k for k in value if k not in labels]:
        _field(pdf, labels.get(key, str(key)), value[key], mono=key == "hash")


def _heading(pdf: FPDF, text: str) -> None:
    pdf.ln(2)
    pdf.set_font("helvetica", "B", 12)
    pdf.cell(0, 7, pdf_text(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _subheading(pdf: FPDF, text: str) -> None:
    pdf.set_font("helvetica", "B", 10)
    pdf.multi_cell(0, 6, pdf_text(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _paragraph(pdf: FPDF, text: str, *, size: int = 9) -> None:
    pdf.set_font("helvetica", size=size)
    pdf.multi_cell(0, 4.5, pdf_text(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _field(pdf: FPDF, label: str, value: Any, *, mono: bool = False, wide: bool = False) -> None:
    """One labelled line; long values wrap in the value column, long labels sit above it.

    ``wide`` puts the value under its label at full width (a signature wider than the
    value column stays on one line, so it can be read and typed back).
    """
    pdf.set_font("helvetica", "B", 9)
    label = pdf_text(label)
    if wide or pdf.get_string_width(label) > _LABEL_WIDTH - 2:
        pdf.multi_cell(0, 5, label, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if not wide:
            pdf.set_x(pdf.l_margin + _LABEL_WIDTH)
    else:
        pdf.cell(_LABEL_WIDTH, 5, label)
    pdf.set_font("courier" if mono else "helvetica", size=8 if mono else 9)
    text = pdf_text(_display(value))
    pdf.multi_cell(0, 5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _display(value: Any) -> str:
    """A value as a person reads it: strings bare, scalar lists joined, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "-"
    if isinstance(value, list) and all(_is_scalar(item) for item in value):
        return ", ".join(_display(item) for item in value) if value else "(none)"
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)


def _shorten(text: str, limit: int = 26) -> str:
    """Digests are long; the start and end identify one for a reader (the JSON has it all)."""
    if len(text) <= limit:
        return text
    keep = (limit - 3) // 2
    return f"{text[: limit - 3 - keep]}...{text[-keep:]}"
