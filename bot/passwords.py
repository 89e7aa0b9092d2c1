"""Dashboard password hashing: scrypt with a random salt, stored as one self-describing string."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cache

# scrypt cost: about 16 MB and tens of milliseconds per check, slow enough to make guessing a
# stolen table expensive and fast enough for a login form. Stored in each hash, so raising it
# later still verifies old hashes.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 10

# The passwords every guessing list starts with; refused whatever their length.
_COMMON = frozenset(
    {
        "password", "password1", "password123", "passw0rd", "123456", "12345678", "123456789",
        "1234567890", "qwerty", "qwertyuiop", "qwerty123", "admin", "admin123", "administrator",
        "letmein", "welcome", "welcome1", "iloveyou", "abc123", "abcdefgh", "00000000",
        "11111111", "88888888", "66666666", "woaini1314", "1qaz2wsx", "1q2w3e4r", "a123456789",
        "shuoshi", "shuoshi123", "dashboard",
    }
)  # fmt: skip


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    """`scrypt$N$r$p$salt$key` (base64): the parameters travel with the hash."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P)
    return "$".join(("scrypt", str(n), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)))


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check; a malformed stored hash never matches."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


@cache
def dummy_hash() -> str:
    """Checked when the username is unknown: a wrong name costs as long as a wrong password, so
    the answer time does not tell which of the two was wrong."""
    return hash_password(secrets.token_urlsafe(16))


def weakness(password: str, username: str = "") -> str | None:
    """Why a new password is refused (a template macro name), or None when it is acceptable."""
    if not password.strip():
        return "password_empty"
    if len(password) < MIN_LENGTH:
        return "password_short"
    lowered = password.lower()
    if lowered in _COMMON or (username and username.lower() in lowered):
        return "password_common"
    if len(set(password)) < 4:
        return "password_repetitive"
    return None


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=64 * 2**20
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
