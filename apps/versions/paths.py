"""Artifact paths: canonicalised once, validated on that canonical string, and that string is what is stored.

Paths are labels inside a version; blobs live under their SHA-256, so a path never reaches the file system.
They are shown to reviewers, though, so a path must read as what it is: no invisible characters that
reorder or hide text (bidi controls), and no look-alikes of '/', '\\', '.' or ':' that make one file pass
for another ('weights∕model.bin' is one segment that looks like two).

Every path, from the upload page, the API's metadata or the CLI (which goes through the API), passes
`canonical_artifact_path`.
"""

import re
import unicodedata

from django.core.exceptions import ValidationError

MAX_PATH_LENGTH = 1024
MAX_SEGMENT_LENGTH = 255
FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\%#?*<>|\"]")
DRIVE_PREFIX = re.compile(r"^[A-Za-z]:")
PATH_SYNTAX = set("/\\.:")
# Unicode categories that never belong in a path: controls, format characters (bidi overrides and isolates,
# U+200E/F marks, zero-width characters, U+FEFF), surrogates, private use, unassigned, line and paragraph separators.
REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# Characters that display as path syntax but that compatibility normalisation (NFKC, checked below) does not map to it.
LOOKALIKES = {
    "\u2044": "/",  # FRACTION SLASH
    "\u2215": "/",  # DIVISION SLASH
    "\u2571": "/",  # BOX DRAWINGS LIGHT DIAGONAL UPPER RIGHT TO LOWER LEFT
    "\u27cb": "/",  # MATHEMATICAL RISING DIAGONAL
    "\u29f8": "/",  # BIG SOLIDUS
    "\u1735": "/",  # PHILIPPINE SINGLE PUNCTUATION
    "\u2341": "/",  # APL FUNCTIONAL SYMBOL QUAD SLASH
    "\u3033": "/",  # VERTICAL KANA REPEAT MARK UPPER HALF
    "\u0337": "/",  # COMBINING SHORT SOLIDUS OVERLAY
    "\u0338": "/",  # COMBINING LONG SOLIDUS OVERLAY
    "\u20eb": "/",  # COMBINING LONG DOUBLE SOLIDUS OVERLAY
    "\u2216": "\\",  # SET MINUS
    "\u2572": "\\",  # BOX DRAWINGS LIGHT DIAGONAL UPPER LEFT TO LOWER RIGHT
    "\u27cd": "\\",  # MATHEMATICAL FALLING DIAGONAL
    "\u29f5": "\\",  # REVERSE SOLIDUS OPERATOR
    "\u29f9": "\\",  # BIG REVERSE SOLIDUS
    "\u20e5": "\\",  # COMBINING REVERSE SOLIDUS OVERLAY
    "\u2236": ":",  # RATIO
    "\ua789": ":",  # MODIFIER LETTER COLON
    "\u02d0": ":",  # MODIFIER LETTER TRIANGULAR COLON
    "\u0589": ":",  # ARMENIAN FULL STOP
    "\u05c3": ":",  # HEBREW PUNCTUATION SOF PASUQ
    "\u0701": ".",  # SYRIAC SUPRALINEAR FULL STOP
    "\u0702": ".",  # SYRIAC SUBLINEAR FULL STOP
    "\ua4f8": ".",  # LISU LETTER TONE MYA TI
    "\u3002": ".",  # IDEOGRAPHIC FULL STOP
}


def _character_name(ch: str) -> str:
    return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed character')})"


def path_character_problem(path: str) -> str | None:
    """Why a path's characters make it unsafe to show or store (None when they are fine)."""
    bad = FORBIDDEN_CHARACTERS.search(path)
    if bad:
        return f"contains {bad.group()!r}; use letters, digits, '.', '-', '_' and '/'."
    for ch in path:
        if ch.isascii():
            continue
        if unicodedata.category(ch) in REFUSED_CATEGORIES:
            return f"contains {_character_name(ch)}, an invisible or control character that can hide or reorder what a reader sees."
        if unicodedata.category(ch) == "Zs":
            return f"contains {_character_name(ch)}; the only space allowed is the plain space."
        looks_like = LOOKALIKES.get(ch) or next((c for c in unicodedata.normalize("NFKC", ch) if c in PATH_SYNTAX), None)
        if looks_like:
            return f"contains {_character_name(ch)}, which looks like {looks_like!r} but is not; use '/' between folders and plain ASCII punctuation."
    return None


def canonical_artifact_path(raw: str) -> str:
    """Return the canonical form of a relative artifact path, or raise ValidationError saying what is wrong."""
    if not isinstance(raw, str) or not raw:
        raise ValidationError("An artifact path is empty.", code="empty_path")
    problem = path_character_problem(raw)  # before normalising: NFC must not be what hides a character
    if problem:
        raise ValidationError(f"Artifact path {ascii(raw)} {problem}", code="path_characters")
    path = unicodedata.normalize("NFC", raw)
    if len(path) > MAX_PATH_LENGTH:
        raise ValidationError(f"Artifact path is longer than {MAX_PATH_LENGTH} characters.", code="path_too_long")
    if path.startswith("/") or DRIVE_PREFIX.match(path):
        raise ValidationError(f"Artifact path {path!r} is absolute; give a path relative to the version.", code="absolute_path")
    segments = path.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ValidationError(
                f"Artifact path {path!r} has an empty, '.' or '..' segment; give a plain relative path like 'weights/model.safetensors'.",
                code="path_traversal",
            )
        if len(segment) > MAX_SEGMENT_LENGTH or segment != segment.strip():
            raise ValidationError(f"Artifact path {path!r} has a segment that is too long or padded with spaces.", code="path_segment")
    return path


BLOB_PREFIX = "sha256"


def blob_key(sha256: str) -> str:
    """Where the blob with this digest lives in the artifact storage: sha256/aa/bb/<digest>."""
    return f"{BLOB_PREFIX}/{sha256[:2]}/{sha256[2:4]}/{sha256}"
