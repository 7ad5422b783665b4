"""The `scim:provider/user-store` import in memory: the same guarantees as the reference host's
in-memory store (host-harness/src/store/memory.rs).

Functions answer `Ok(value)` or `Err(store_error)`; component.py turns them into the component
model's `result`. Users are plain dictionaries keyed by the WIT's field names.
"""

import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional

User = dict[str, Any]


@dataclass
class Ok:
    value: Any


@dataclass
class Err:
    """A `store-error`: its case (`not-found`, `conflict`, …) and the payload, if the case has one."""

    case: str
    payload: Optional[str] = None


class MemoryStore:
    """Users in creation order, with the unique indexes a real store keeps, and the admin policy."""

    def __init__(self) -> None:
        # Creation sequence → user: the stable order of pages and scans (dicts keep insertion
        # order, and a sequence is never inserted twice).
        self._users: dict[int, User] = {}
        self._by_id: dict[str, int] = {}
        # Case-folded userName → sequence.
        self._by_user_name: dict[str, int] = {}
        # Case-folded email → sequence.
        self._by_email: dict[str, int] = {}
        self._admins: set[int] = set()
        self._next_sequence = 0
        # DELETE suspends instead of removing.
        self.delete_suspends = False
        # Administrators may not be suspended or deleted through SCIM.
        self.protect_admins = True

    def set_admin(self, id: str, admin: bool) -> bool:
        """Makes a user an administrator, or an ordinary user again; False if no user has the id."""
        sequence = self._by_id.get(id)
        if sequence is None:
            return False
        if admin:
            self._admins.add(sequence)
        else:
            self._admins.discard(sequence)
        return True

    def _user(self, sequence: Optional[int]) -> Optional[User]:
        return None if sequence is None else self._users.get(sequence)

    def get(self, id: str) -> Ok:
        return Ok(self._user(self._by_id.get(id)))

    def find_by_user_name(self, user_name: str) -> Ok:
        return Ok(self._user(self._by_user_name.get(fold(user_name))))

    def find_by_external_id(self, external_id: str) -> Ok:
        return Ok([user for user in self._users.values() if user["external-id"] == external_id])

    def find_by_email(self, email: str) -> Ok:
        return Ok(self._user(self._by_email.get(fold(email))))

    def page(self, offset: int, limit: int) -> Ok:
        users = list(self._users.values())[offset : offset + limit]
        return Ok({"users": users, "total": len(self._users)})

    def scan(self, cursor: Optional[str], limit: int) -> Ok | Err:
        after = -1
        if cursor is not None:
            if not (cursor.isascii() and cursor.isdigit()):
                return Err("unavailable", "the scan cursor is not this store's")
            after = int(cursor)
        found = [(seq, user) for seq, user in self._users.items() if seq > after][:limit]
        full = limit > 0 and len(found) == limit
        return Ok({"users": [user for _, user in found], "next": str(found[-1][0]) if full else None})

    def _conflict(self, fields: User, own: Optional[int]) -> Optional[Err]:
        """Which unique attribute, if any, another user already holds."""

        def taken(index: dict[str, int], key: str) -> bool:
            holder = index.get(fold(key))
            return holder is not None and holder != own

        if taken(self._by_user_name, fields["user-name"]):
            return Err("conflict", "userName")
        if taken(self._by_email, fields["email"]):
            return Err("conflict", "email")
        return None

    def create(self, fields: User) -> Ok | Err:
        conflict = self._conflict(fields, None)
        if conflict:
            return conflict

        now = now_millis()
        user = {"id": str(uuid.uuid4()), **fields, "created": now, "modified": now, "version": 1}
        sequence = self._next_sequence
        self._next_sequence += 1
        self._by_id[user["id"]] = sequence
        self._by_user_name[fold(user["user-name"])] = sequence
        self._by_email[fold(user["email"])] = sequence
        self._users[sequence] = user
        return Ok(user)

    def update(self, id: str, expected_version: int, fields: User) -> Ok | Err:
        sequence = self._by_id.get(id)
        current = self._user(sequence)
        if current is None:
            return Err("not-found")
        if current["version"] != expected_version:
            return Err("version-mismatch")
        if ascii_fold(fields["email"]) != ascii_fold(current["email"]):
            return Err("refused", "the login email cannot change")
        conflict = self._conflict(fields, sequence)
        if conflict:
            return conflict
        if current["active"] and not fields["active"]:
            refusal = self._check_admin_removal(sequence, "suspended")
            if refusal:
                return refusal

        changes = {name: value for name, value in fields.items() if name != "email"}
        updated = {
            **current,
            **changes,
            "modified": max(now_millis(), current["modified"]),
            "version": current["version"] + 1,
        }
        del self._by_user_name[fold(current["user-name"])]
        self._by_user_name[fold(updated["user-name"])] = sequence
        self._users[sequence] = updated
        return Ok(updated)

    def delete(self, id: str) -> Ok | Err:
        sequence = self._by_id.get(id)
        current = self._user(sequence)
        if current is None:
            return Err("not-found")

        if self.delete_suspends:
            if not current["active"]:
                return Ok(current)
            refusal = self._check_admin_removal(sequence, "suspended")
            if refusal:
                return refusal
            suspended = {
                **current,
                "active": False,
                "modified": max(now_millis(), current["modified"]),
                "version": current["version"] + 1,
            }
            self._users[sequence] = suspended
            return Ok(suspended)

        refusal = self._check_admin_removal(sequence, "deleted")
        if refusal:
            return refusal
        del self._by_id[id]
        self._admins.discard(sequence)
        del self._users[sequence]
        del self._by_user_name[fold(current["user-name"])]
        del self._by_email[fold(current["email"])]
        return Ok(None)

    def _check_admin_removal(self, sequence: int, action: str) -> Optional[Err]:
        """Refuses to take an administrator out of service where the policy forbids it."""
        if sequence not in self._admins:
            return None
        if self.protect_admins:
            return Err("refused", f"administrators cannot be {action} through SCIM on this server")
        others_active = [
            other
            for other in self._admins
            if other != sequence and self._users.get(other, {}).get("active")
        ]
        if not others_active:
            return Err("refused", f"the last administrator cannot be {action}")
        return None


def fold(text: str) -> str:
    """Case folding for userName and email, as the reference store does (Unicode lower case)."""
    return text.lower()


def ascii_fold(text: str) -> str:
    """ASCII-only case folding: the login email compares so on update."""
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in text)


def now_millis() -> int:
    return time.time_ns() // 1_000_000
