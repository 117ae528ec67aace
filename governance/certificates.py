"""Deletion certificates: Ed25519 signatures over canonical JSON, and a PDF for people.

A certificate is a JSON object (DESIGN §6) signed as a detached signature in an envelope,
``{"certificate": body, "signature": {"algorithm", "key_id", "value"}}``. The signature
covers the body's canonical bytes: sorted keys, no whitespace, UTF-8, non-ASCII left
unescaped. Anyone can re-derive those bytes from the JSON with any JSON library that sorts
keys, so a third party checks a certificate with the published public key and standard
tools (``openssl pkeyutl``), without trusting this server (docs/certificates.md).

Bodies carry only strings, integers, booleans, null, lists and objects: a float has no single
canonical text across JSON libraries, so one would make signatures unverifiable elsewhere.

The signing key lives in a PEM file (``LETHE_SIGNING_KEY_PATH``) created on first use. The
PDF is a rendering of the body, not a second signed artifact; the JSON is authoritative.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from fpdf import FPDF
from fpdf.enums import XPos, YPos

T = TypeVar("T")

ALGORITHM = "Ed25519"
KEY_ID_PREFIX = "ed25519:"
SIGNATURE_BYTES = 64
# Integers beyond ±(2**53 - 1) lose precision in JavaScript and many other JSON parsers
# (RFC 7493 I-JSON), and a verifier that re-serialises a rounded number gets other bytes.
MAX_SAFE_INTEGER = 2**53 - 1

ENVELOPE_KEYS = frozenset({"certificate", "signature"})
SIGNATURE_KEYS = frozenset({"algorithm", "key_id", "value"})


class SigningKeyError(ImproperlyConfigured):
    """The signing key file exists but does not hold a usable Ed25519 private key."""


# --- Signing key ------------------------------------------------------------------------

_signing_keys: dict[str, Ed25519PrivateKey] = {}
_signing_keys_lock = threading.Lock()


def signing_key_path() -> Path:
    """Where this server's signing key lives (``settings.LETHE_SIGNING_KEY_PATH``)."""
    default = Path(settings.BASE_DIR) / "var" / "keys" / "signing-ed25519.pem"
    return Path(getattr(settings, "LETHE_SIGNING_KEY_PATH", default))


def signing_key() -> Ed25519PrivateKey:
    """This server's Ed25519 signing key, created on first use and cached per path.

    Every process of a deployment must sign with the same key, so the key is a file rather
    than per-process state; creating it on first use keeps a bare checkout working.
    """
    path = signing_key_path()
    cache_key = str(path)
    with _signing_keys_lock:
        key = _signing_keys.get(cache_key)
        if key is None:
            key = _signing_key_load_or_create(path)
            _signing_keys[cache_key] = key
        return key


def signing_key_cache_clear() -> None:
    """Forget cached keys, so the next call reads the key file again (tests, key rotation)."""
    with _signing_keys_lock:
        _signing_keys.clear()


def _signing_key_load_or_create(path: Path) -> Ed25519PrivateKey:
    try:
        return _signing_key_parse(path, path.read_bytes())
    except FileNotFoundError:
        pass
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if _publish_exclusively(path, pem):
        return key
    # Another process created the key first: everyone signs with the winner's key.
    return _signing_key_parse(path, path.read_bytes())


def _publish_exclusively(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` (mode 0600) unless it exists; False if it did.

    The bytes go to a private temporary file first (O_CREAT | O_EXCL, 0600), which is then
    hard-linked into place: the link fails if the key exists, and a process that loses the
    race never sees a half-written key file, as it could if the final name were written
    in place.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _signing_key_parse(path: Path, data: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(
            f"signing key file {path} is not an unencrypted PEM private key ({exc}); "
            "restore it from backup, or move it away to create a new key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"signing key file {path} holds a {type(key).__name__}, not an Ed25519 key"
        )
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """``ed25519:`` + the first 16 hex digits of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_ID_PREFIX + hashlib.sha256(raw).hexdigest()[:16]


def public_key_info() -> dict[str, str]:
    """What the public-key endpoint serves: enough for any tool to verify a certificate."""
    public_key = signing_key().public_key()
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "key_id": key_id(public_key),
        "algorithm": ALGORITHM,
        "public_key_pem": pem.decode("ascii"),
        "public_key_raw": base64.b64encode(raw).decode("ascii"),
    }


# --- Canonical form, signing and verification -------------------------------------------


def canonical_bytes(body: dict[str, Any]) -> bytes:
    """The exact bytes a certificate's signature covers.

    Raises ValueError naming the offending path (``$.models[0].x``) for a float, NaN, an
    integer beyond ±(2**53 - 1), a non-string key, a string that is not valid Unicode, or
    any type other than str, int, bool, None, list and dict.
    """
    if not isinstance(body, dict):
        raise ValueError(f"$: a certificate body must be a JSON object, not {type(body).__name__}")
    _check_canonical(body, "$", set())
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _check_canonical(value: Any, path: str, open_containers: set[int]) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"{path}: integer {value} is beyond ±(2**53 - 1)")
    elif isinstance(value, float):
        raise ValueError(
            f"{path}: {value!r} is a float; certificates carry only integers and strings"
        )
    elif isinstance(value, list | dict):
        if id(value) in open_containers:
            raise ValueError(f"{path}: circular reference")
        open_containers.add(id(value))
        if isinstance(value, list):
            for index, item in enumerate(value):
                _check_canonical(item, f"{path}[{index}]", open_containers)
        else:
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"{path}: key {key!r} is not a string")
                _check_text(key, f"{path} key {key!r}")
                _check_canonical(item, f"{path}.{key}", open_containers)
        open_containers.discard(id(value))
    else:
        raise ValueError(f"{path}: {type(value).__name__} is not allowed in a certificate")


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{path}: string is not valid Unicode (lone surrogate)") from None


def certificate_sign(body: dict[str, Any]) -> dict[str, Any]:
    """Sign ``body`` with this server's key; return the envelope to store and serve.

    The envelope holds a copy of the body as signed, so later changes to the caller's dict
    cannot make the stored certificate disagree with its signature.
    """
    key = signing_key()
    signer = key_id(key.public_key())
    data = canonical_bytes(body)
    claimed = body.get("signing_key_id", signer)
    if claimed != signer:
        raise ValueError(f"$.signing_key_id: body names {claimed!r}; this server signs as {signer}")
    return {
        "certificate": json.loads(data),
        "signature": {
            "algorithm": ALGORITHM,
            "key_id": signer,
            "value": base64.b64encode(key.sign(data)).decode("ascii"),
        },
    }


@dataclass(frozen=True)
class SignatureCheck:
    """Result of checking an envelope's signature.

    ``key_id`` is the id of the key the check used (empty when the given public key could
    not be read); ``reason`` says what is wrong, and is empty when ``ok``.
    """

    ok: bool
    key_id: str
    reason: str


def certificate_verify(
    envelope: Any, *, public_key_pem: str | bytes | None = None
) -> SignatureCheck:
    """Check an envelope against ``public_key_pem``, or this server's own key when None.

    Never raises for malformed input (the envelope or the given PEM): certificates arrive
    from outside, and the answer to a broken one is ok=False with a reason, not a 500.
    """
    if public_key_pem is None:
        public_key = signing_key().public_key()
    else:
        loaded = _public_key_load(public_key_pem)
        if isinstance(loaded, str):
            return SignatureCheck(ok=False, key_id="", reason=loaded)
        public_key = loaded
    verifier = key_id(public_key)
    reason = _envelope_problem(envelope, public_key, verifier)
    return SignatureCheck(ok=not reason, key_id=verifier, reason=reason)


def _public_key_load(pem: str | bytes) -> Ed25519PublicKey | str:
    """The Ed25519 public key in ``pem``, or a reason why there is none."""
    try:
        data = pem.encode("utf-8") if isinstance(pem, str) else bytes(pem)
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm) as exc:
        return f"public key is not a PEM SubjectPublicKeyInfo: {exc}"
    if not isinstance(key, Ed25519PublicKey):
        return f"public key is a {type(key).__name__}, not an Ed25519 key"
    return key


def _envelope_problem(envelope: Any, public_key: Ed25519PublicKey, verifier: str) -> str:
    """What is wrong with ``envelope`` under ``public_key``; empty when the signature holds."""
    if not isinstance(envelope, dict):
        return f"envelope is a {type(envelope).__name__}, not a JSON object"
    if extra := _unexpected(envelope, ENVELOPE_KEYS):
        return f"envelope has unsigned extra fields: {extra}"
    body, signature = envelope.get("certificate"), envelope.get("signature")
    if not isinstance(body, dict):
        return "envelope.certificate is missing or not a JSON object"
    if not isinstance(signature, dict):
        return "envelope.signature is missing or not a JSON object"
    if extra := _unexpected(signature, SIGNATURE_KEYS):
        return f"signature has unexpected fields: {extra}"
    algorithm, claimed, value = (signature.get(k) for k in ("algorithm", "key_id", "value"))
    if algorithm != ALGORITHM:
        return f"signature.algorithm is {algorithm!r}, expected {ALGORITHM!r}"
    if not isinstance(claimed, str):
        return "signature.key_id is missing or not a string"
    if claimed != verifier:
        return f"signature.key_id {claimed!r} does not match the verifying key {verifier!r}"
    if "signing_key_id" in body and body["signing_key_id"] != claimed:
        return f"certificate.signing_key_id {body['signing_key_id']!r} != signature.key_id"
    if not isinstance(value, str):
        return "signature.value is missing or not a string"
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "signature.value is not valid standard base64"
    if len(raw) != SIGNATURE_BYTES:
        return f"signature.value decodes to {len(raw)} bytes, an Ed25519 signature has 64"
    try:
        data = canonical_bytes(body)
    except ValueError as exc:
        return f"certificate cannot be canonicalised: {exc}"
    try:
        public_key.verify(raw, data)
    except InvalidSignature:
        return "signature does not match the certificate (altered body or wrong key)"
    return ""


def _unexpected(mapping: dict[Any, Any], allowed: frozenset[str]) -> str:
    return ", ".join(sorted(repr(key) for key in mapping if key not in allowed))


# --- PDF rendering ----------------------------------------------------------------------

# Known fields get labels and a fixed place; anything else is shown under its own key, so
# the rendering never depends on the body's exact shape (it is defined by the caller).
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
_RECORD_FIELDS = {"records_found": "Records found", "records_erased": "Records erased"}
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
# Characters NFKD cannot reduce to Latin-1 but that have a conventional spelling in it.
_TRANSLITERATIONS = str.maketrans(
    {
        "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i", "ŀ": "l",
        "Œ": "OE", "œ": "oe", "Ŋ": "N", "ŋ": "n", "ſ": "s", "ẞ": "SS",
        "‘": "'", "’": "'", "‚": ",", "“": '"', "”": '"', "„": '"', "–": "-", "—": "-",
        "−": "-", "…": "...", "•": "*", "€": "EUR", "™": "TM", "\u2028": "\n",
    }
)  # fmt: skip


class _CertificatePDF(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("helvetica", size=7)
        self.cell(0, 5, f"{self.footer_text}page {self.page_no()}/{{nb}}", align="C")


def certificate_pdf(envelope: dict[str, Any]) -> bytes:
    """A human-readable PDF of a signed certificate; renders any body without failing.

    Core fonts only (no font files to ship), so text is reduced to Latin-1 by ``pdf_text``.
    """
    envelope = envelope if isinstance(envelope, dict) else {}
    body = envelope.get("certificate")
    body = body if isinstance(body, dict) else {}
    signature = envelope.get("signature")
    signature = signature if isinstance(signature, dict) else {}

    pdf = _CertificatePDF(format="A4")
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


def pdf_table(
    pdf: FPDF,
    columns: Sequence[tuple[str, str, float]],
    items: Iterable[T],
    text_of: Callable[[T, str], str],
    *,
    line_height: float,
) -> None:
    """A table in 7-point type: a header of titles, then one row per item.

    ``columns`` holds (key, title, width in mm); each cell is ``text_of(item, key)``,
    made printable with ``pdf_text``.
    """
    pdf.set_font("helvetica", size=7)
    widths = tuple(width for _, _, width in columns)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=line_height, padding=1) as t:
        header = t.row()
        for _, title, _ in columns:
            header.cell(title)
        for item in items:
            row = t.row()
            for key, _, _ in columns:
                row.cell(pdf_text(text_of(item, key)))


def pdf_text(text: str) -> str:
    """``text`` in Latin-1, the only encoding the PDF core fonts have.

    Accented letters are reduced to their base letter when Latin-1 lacks them (NFKD), a few
    letters and punctuation marks get their conventional spelling, and anything else becomes
    ``<U+XXXX>`` so the reader can still tell which character it was.
    """
    return "".join(_latin1(char) for char in text.translate(_TRANSLITERATIONS))


def _latin1(char: str) -> str:
    if char == "\n" or (ord(char) < 0x100 and char.isprintable()):
        return char
    base = "".join(_base_letters(unicodedata.normalize("NFKD", char)))
    return base or f"<U+{ord(char):04X}>"


def _base_letters(chars: Iterable[str]) -> Iterable[str]:
    for char in chars:
        if ord(char) < 0x100 and char.isprintable() and not unicodedata.combining(char):
            yield char
