"""Failed dashboard logins, counted so that guessing is slow and nobody is locked out."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from workflow.clock import Clock


class LoginThrottle:
    """Failed logins counted per (client address, username) and per client address, on the
    injected clock: `per_name` failures of one name from one address within `window` refuse
    that name from that address, and `per_address` failures of any names refuse the address
    (someone trying many names), each until its oldest failure ages out. A name is never
    refused as such, so nobody can lock its owner out from another address. IPv6 clients
    count per /64, the block one subscriber usually holds. In memory: a restart forgets, which
    is acceptable for a form whose passwords are scrypt-hashed and checked against a
    weak-password list."""

    def __init__(
        self,
        clock: Clock,
        *,
        per_name: int = 5,
        per_address: int = 20,
        window: timedelta = timedelta(minutes=15),
        max_keys: int = 10_000,
    ) -> None:
        self.clock = clock
        self.per_name = per_name
        self.per_address = per_address
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[tuple[str, ...], list[datetime]] = {}

    def _keys(self, address: str, username: str) -> dict[tuple[str, ...], int]:
        """The counters one attempt belongs to, with the failures each of them allows."""
        client = client_block(address)
        return {(client, username.lower()): self.per_name, (client,): self.per_address}

    def _recent(self, key: tuple[str, ...]) -> list[datetime]:
        cutoff = self.clock.now() - self.window
        kept = [t for t in self._failures.get(key, []) if t > cutoff]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def wait(self, address: str, username: str) -> timedelta | None:
        """How long this address must wait before its next attempt at this name, or None."""
        waits = []
        for key, limit in self._keys(address, username).items():
            recent = self._recent(key)
            if len(recent) >= limit:
                waits.append(recent[-limit] + self.window - self.clock.now())
        return max(waits, default=None)

    def failed(self, address: str, username: str) -> None:
        for key in self._keys(address, username):
            if key not in self._failures and len(self._failures) >= self.max_keys:
                self._failures.pop(next(iter(self._failures)))  # bounded: forget the oldest
            self._failures.setdefault(key, []).append(self.clock.now())

    def succeeded(self, address: str, username: str) -> None:
        """The name's failures from this address are forgiven; the address's are not, or one
        valid account would let its holder try other names without end."""
        self._failures.pop((client_block(address), username.lower()), None)


def client_block(address: str) -> str:
    """What one client is counted as: its IPv4 address, or the /64 of its IPv6 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
