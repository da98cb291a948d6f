"""Identities (an Ed25519 signing key and an X25519 box key) and secret key files.

Secret files are created with mode 0600 and never overwritten; loading refuses a file that
group or others can read. Secrets never appear in a repr or a log line.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.public
import nacl.secret
import nacl.signing
import nacl.utils

from ledger_node.shared.errors import KeyFileError
from ledger_node.shared.ids import ID_PATTERN, b64

_IDENTITY_KIND = "meterledger-identity"
_GROUP_KEY_KIND = "meterledger-group-key"


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """The public half of an identity: what others register to verify and encrypt to it."""

    name: str
    verify_key: nacl.signing.VerifyKey
    box_key: nacl.public.PublicKey

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.name,
            "ed25519": b64(bytes(self.verify_key)),
            "x25519": b64(bytes(self.box_key)),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PublicIdentity:
        try:
            return cls(
                name=_check_id(obj["id"]),
                verify_key=nacl.signing.VerifyKey(_unb64(obj["ed25519"], 32)),
                box_key=nacl.public.PublicKey(_unb64(obj["x25519"], 32)),
            )
        except (KeyError, TypeError) as exc:
            raise KeyFileError(f"public identity lacks {exc}") from None


@dataclass(frozen=True, slots=True, repr=False)
class Identity:
    """A named signing key and box key. `repr` shows only public parts."""

    name: str
    signing_key: nacl.signing.SigningKey
    box_secret: nacl.public.PrivateKey

    @classmethod
    def generate(cls, name: str) -> Identity:
        return cls(
            _check_id(name), nacl.signing.SigningKey.generate(), nacl.public.PrivateKey.generate()
        )

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity(self.name, self.signing_key.verify_key, self.box_secret.public_key)

    def __repr__(self) -> str:
        return f"Identity({self.name!r}, ed25519={bytes(self.signing_key.verify_key).hex()[:16]}…)"

    def save(self, path: Path) -> Path:
        """Write the secret file (0600, never overwriting) and `<path>.pub`; return the latter."""
        secret = {
            "kind": _IDENTITY_KIND,
            "id": self.name,
            "ed25519_seed": b64(bytes(self.signing_key)),
            "x25519_secret": b64(bytes(self.box_secret)),
        }
        pub_path = path.with_name(path.name + ".pub")
        if pub_path.exists():
            raise KeyFileError(f"{pub_path} exists; refusing to overwrite it (move it away first)")
        write_secret_file(path, _dump(secret))
        pub_path.write_text(_dump(self.public.to_json()))
        return pub_path

    @classmethod
    def load(cls, path: Path) -> Identity:
        obj = _load_secret_json(path, _IDENTITY_KIND)
        try:
            return cls(
                name=_check_id(obj["id"]),
                signing_key=nacl.signing.SigningKey(_unb64(obj["ed25519_seed"], 32)),
                box_secret=nacl.public.PrivateKey(_unb64(obj["x25519_secret"], 32)),
            )
        except KeyError as exc:
            raise KeyFileError(f"{path}: missing {exc}") from None


@dataclass(frozen=True, slots=True, repr=False)
class GroupKey:
    """A privacy group's data key (SecretBox, 32 bytes) for one site and epoch."""

    site: str
    epoch: int
    key: bytes

    @classmethod
    def generate(cls, site: str, epoch: int = 0) -> GroupKey:
        return cls(_check_id(site), epoch, nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE))

    def __repr__(self) -> str:
        return f"GroupKey(site={self.site!r}, epoch={self.epoch})"

    def box(self) -> nacl.secret.SecretBox:
        return nacl.secret.SecretBox(self.key)

    def save(self, path: Path) -> None:
        obj = {
            "kind": _GROUP_KEY_KIND,
            "site": self.site,
            "epoch": self.epoch,
            "key": b64(self.key),
        }
        write_secret_file(path, _dump(obj))

    @classmethod
    def load(cls, path: Path) -> GroupKey:
        obj = _load_secret_json(path, _GROUP_KEY_KIND)
        try:
            epoch = obj["epoch"]
            if type(epoch) is not int or epoch < 0:
                raise KeyFileError(f"{path}: epoch must be a non-negative integer")
            return cls(_check_id(obj["site"]), epoch, _unb64(obj["key"], 32))
        except KeyError as exc:
            raise KeyFileError(f"{path}: missing {exc}") from None


def write_secret_file(path: Path, text: str) -> None:
    """Create `path` with mode 0600 and write `text`; refuse if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(
            f"{path} exists; refusing to overwrite a key (move it away first)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def load_public(path: Path) -> PublicIdentity:
    """Read a `.pub` file written by `Identity.save`."""
    try:
        return PublicIdentity.from_json(json.loads(path.read_text()))
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a public identity: {exc}") from None


def _load_secret_json(path: Path, kind: str) -> dict[str, Any]:
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    try:
        obj = json.loads(text)
    except ValueError:
        raise KeyFileError(f"{path} is not a meterledger key file (not JSON)") from None
    if not isinstance(obj, dict) or obj.get("kind") != kind:
        raise KeyFileError(f"{path} is not a {kind} file")
    return obj


def _check_id(name: Any) -> str:
    if not isinstance(name, str) or not ID_PATTERN.fullmatch(name):
        raise KeyFileError(f"id {name!r} must match {ID_PATTERN.pattern}")
    return name


def _unb64(text: Any, length: int) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise KeyFileError("key material is not base64") from None
    if len(data) != length:
        raise KeyFileError(f"key material is {len(data)} bytes, expected {length}")
    return data


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"
