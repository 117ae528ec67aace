"""Deletion certificates: the signed proof that an erasure happened (docs/certificates.md).

One package, one module per job, imported by what they do:

- ``body``: the certificate body, built from the database rows when a request completes;
- ``signing``: the Ed25519 key, signing over the canonical bytes (``governance.canonical``)
  and verification of an envelope, needing no database;
- ``keys``: the registry of every key that ever signed (rotation), and verification with
  the key a signature names;
- ``claims``: re-checking each claim of a certificate against the database as it is now;
- ``pdf``: the certificate rendered for people (the JSON stays authoritative).
"""
