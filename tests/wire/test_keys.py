"""Identity and group-key files: created 0600, never overwritten, never too open to load."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ledger_node.shared.errors import KeyFileError
from ledger_node.shared.keys import GroupKey, Identity, load_public
from tests.conftest import run_module


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("module", "name"), [("gateway.cli", "gw-a"), ("ledger_node.interfaces.cli", "tso")]
)
def test_keygen_cli_creates_0600_and_refuses_to_overwrite(
    tmp_path: Path, module: str, name: str
) -> None:
    key = tmp_path / "keys" / f"{name}.key"
    cmd = [module, "keygen", "--id", name, "--out", str(key)]
    first = run_module(*cmd)
    assert first.returncode == 0, first.stderr
    assert _mode(key) == 0o600
    public = json.loads(first.stdout)
    assert public["id"] == name
    assert load_public(key.with_name(key.name + ".pub")).to_json() == public
    identity = Identity.load(key)
    assert identity.public.to_json() == public
    secret = json.loads(key.read_text())
    # The secret is in the file and nowhere in what was printed.
    assert secret["ed25519_seed"] not in first.stdout + first.stderr
    assert secret["x25519_secret"] not in first.stdout + first.stderr
    content = key.read_bytes()

    second = run_module(*cmd)
    assert second.returncode == 1
    assert "exists; refusing to overwrite" in second.stderr
    assert key.read_bytes() == content


def test_secret_file_open_to_others_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "gw.key"
    Identity.generate("gw-a").save(key)
    os.chmod(key, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        Identity.load(key)


def test_repr_shows_no_secret(tmp_path: Path) -> None:
    identity = Identity.generate("gw-a")
    group = GroupKey.generate("site1")
    assert bytes(identity.signing_key).hex() not in repr(identity)
    assert group.key.hex() not in repr(group)


def test_group_key_file(tmp_path: Path) -> None:
    path = tmp_path / "site1.group"
    key = GroupKey.generate("site1", epoch=3)
    key.save(path)
    assert _mode(path) == 0o600
    loaded = GroupKey.load(path)
    assert (loaded.site, loaded.epoch, loaded.key) == ("site1", 3, key.key)
    with pytest.raises(KeyFileError, match="exists"):
        GroupKey.generate("site1").save(path)
    assert GroupKey.load(path).key == key.key


def test_wrong_kind_of_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site1.group"
    GroupKey.generate("site1").save(path)
    with pytest.raises(KeyFileError, match="not a meterledger-identity"):
        Identity.load(path)
