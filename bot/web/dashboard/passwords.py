"""Dashboard password hashing: scrypt with a random salt, stored as one self-describing string."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class ScryptCost:
    """scrypt's work factors; every hash records the ones it was made with."""

    n: int
    r: int
    p: int

    @property
    def memory(self) -> int:
        """Bytes scrypt needs: OpenSSL refuses to run unless `maxmem` allows exactly this."""
        return 128 * self.r * (self.n + self.p + 2)


# OWASP's Password Storage Cheat Sheet: N=2^17, r=8, p=1 (128 MiB; under a second a check).
OWASP_COST = ScryptCost(n=2**17, r=8, p=1)
# What new hashes use. Tests lower it (tests/conftest.py) so that logins stay fast; production
# code never changes it. A stored hash with other factors still verifies, and is redone with
# these at its next successful login.
COST = OWASP_COST
MAX_MEMORY = 1024 * 2**20  # a stored hash asking for more is treated as malformed
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 10
# Checks run off the event loop, two at a time: each needs 128 MiB, and a burst of logins must
# neither stall the web chat nor exhaust memory.
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="scrypt")

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


def hash_password(password: str, *, cost: ScryptCost | None = None) -> str:
    """`scrypt$N$r$p$salt$key` (base64): the parameters travel with the hash."""
    cost = cost or COST
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, cost)
    fields = ("scrypt", str(cost.n), str(cost.r), str(cost.p), _b64(salt), _b64(key))
    return "$".join(fields)


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check; a malformed stored hash never matches."""
    try:
        cost, salt, expected = _parse(stored)
        actual = _scrypt(password, salt, cost)
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


async def check_password(password: str, stored: str | None) -> bool:
    """verify_password in a hashing thread, so the event loop goes on serving meanwhile. With
    None (an unknown username) against a dummy hash: a wrong name costs as long as a wrong
    password, so the answer time does not tell which of the two was wrong."""

    def check() -> bool:
        return verify_password(password, dummy_hash() if stored is None else stored)

    return await asyncio.get_running_loop().run_in_executor(_HASHING, check)


async def rehash_password(password: str) -> str:
    """hash_password with today's factors, in a hashing thread (after a successful login)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_HASHING, hash_password, password)


def needs_rehash(stored: str) -> bool:
    """Whether a hash was made with other factors than new hashes get (e.g. before an upgrade)."""
    try:
        return _parse(stored)[0] != COST
    except ValueError:
        return True


def dummy_hash() -> str:
    """A hash of a random password with today's factors (made once per set of factors)."""
    return _dummy_hash(COST)


@cache
def _dummy_hash(cost: ScryptCost) -> str:
    return hash_password(secrets.token_urlsafe(16), cost=cost)


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


def _parse(stored: str) -> tuple[ScryptCost, bytes, bytes]:
    """Factors, salt and key of a stored hash; ValueError when it is not one of ours."""
    scheme, n, r, p, salt, key = stored.split("$")
    cost = ScryptCost(int(n), int(r), int(p))
    if scheme != "scrypt" or min(cost.n, cost.r, cost.p) < 1 or cost.memory > MAX_MEMORY:
        raise ValueError("not a usable scrypt hash")
    return cost, base64.b64decode(salt, validate=True), base64.b64decode(key, validate=True)


def _scrypt(password: str, salt: bytes, cost: ScryptCost) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=cost.n, r=cost.r, p=cost.p, dklen=KEY_BYTES,
        maxmem=cost.memory,
    )  # fmt: skip


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
