"""The gateway's side of enrolment: until its site's first epoch key arrives, a gateway
flashed with a one-time code (``[enrol] code_file``) asks its RA to register it.

The request (`ledger_node.wire.enrol`) carries the gateway's public keys, site and
meters, signed with its own key and bound to the code; it is published retained on
``{prefix}/enrol/{site}/{gateway}`` at every connection. Once the first epoch key is
here (the RA approved, the TSO's node keyed the site), the gateway clears the retained
request and deletes the code file: a code enrols once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gateway.config import GatewayConfig
from gateway.errors import ConfigError
from ledger_node.shared.keys import Identity
from ledger_node.wire import EnrolmentRequest
from ledger_node.wire.enrol import make_proof, normalise_code

log = logging.getLogger("mlg.gateway.enrol")


def read_code(path: Path) -> str:
    """The enrolment code in `path` (ConfigError naming the file if it is no code)."""
    try:
        return normalise_code(path.read_text())
    except OSError as exc:
        raise ConfigError(f"enrol.code_file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"enrol.code_file {path}: {exc}") from None


def request(cfg: GatewayConfig, identity: Identity, code: str, now: float) -> bytes:
    """The signed enrolment request of this gateway."""
    ed25519 = bytes(identity.signing_key.verify_key)
    x25519 = bytes(identity.box_secret.public_key)
    message = EnrolmentRequest(
        by=cfg.gateway_id,
        site=cfg.site,
        meters=tuple(sorted(m.id for m in cfg.meters)),
        ed25519=ed25519,
        x25519=x25519,
        t=int(now),
        proof=make_proof(code, cfg.gateway_id, cfg.site, ed25519, x25519),
    )
    return message.seal(identity)


def finish(path: Path) -> None:
    """Enrolled: the code is spent; remove it from the device."""
    path.unlink(missing_ok=True)
    log.info("enrolled: the site's first epoch key is here; %s deleted", path)
