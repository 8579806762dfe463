"""Users, roles and sessions.

Roles are the seed's "Minimum Role" ladder: read-only < pool-operator < pool-admin.
The users file is JSON: {"users": {NAME: {"role": ROLE, "salt": HEX, "hash": HEX}}}, with
PBKDF2-HMAC-SHA256 password hashes. Sessions live in the memory of the node that made them.
"""
import hashlib
import hmac
import json
import os
import secrets
import uuid
from collections import OrderedDict

ROLES = ("read-only", "pool-operator", "pool-admin")
ITERATIONS = 60000
MAX_SESSIONS = 10000


def rank(role: str) -> int:
    return ROLES.index(role)


def hash_password(password, salt=None):
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS)
    return salt.hex(), digest.hex()


def make_user(role, password):
    if role not in ROLES:
        raise ValueError(f"unknown role {role}")
    salt, digest = hash_password(password)
    return {"role": role, "salt": salt, "hash": digest}


def load_users(path):
    with open(path) as f:
        users = json.load(f)["users"]
    for name, u in users.items():
        if u.get("role") not in ROLES:
            raise ValueError(f"user {name}: unknown role {u.get('role')!r}")
    return users


class Sessions:
    def __init__(self, users):
        self.users = users
        self.sessions = OrderedDict()  # ref -> {"user", "role"}

    def check_password(self, user, password):
        """Return the user's role, or None. Constant work whether or not the user exists."""
        u = self.users.get(user)
        salt = bytes.fromhex(u["salt"]) if u else b"\0" * 16
        _, digest = hash_password(password, salt)
        if u and hmac.compare_digest(digest, u["hash"]):
            return u["role"]
        return None

    def open(self, user, role):
        ref = f"OpaqueRef:{uuid.uuid4()}"
        self.sessions[ref] = {"user": user, "role": role}
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return ref

    def get(self, ref):
        return self.sessions.get(ref) if isinstance(ref, str) else None

    def close(self, ref):
        self.sessions.pop(ref, None)


def write_private_json(path, obj):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
    os.chmod(path, 0o600)
