"""An RA approves a gateway's enrolment request (`mlg-node enrol --gateway GW --code C`).

The request the RA's node received (`network.enrolments`) is opened and its signature
checked by the key it carries; the code must be well formed, unused, and the one the
request was made with (its HMAC proof). Then the node authors the site registration with
the request's site, meters and public keys, exactly as `mlg-node site` would, and keeps
the code's digest so that it never enrols again. A refused approval registers nothing and
is counted (`refused:enrol_wrong_code`, `refused:enrol_code_used`, …).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ledger_node.interfaces.authoring import RequestError, submit
from ledger_node.ledger.admission import Ledger
from ledger_node.network import enrolments
from ledger_node.wire import GatewayKey, SiteRegistration, WireError, open_enrolment
from ledger_node.wire.enrol import code_digest, normalise_code

log = logging.getLogger("mlg.node.enrol")


def _refuse(ledger: Ledger, reason: str, message: str) -> RequestError:
    ledger.count(f"refused:{reason}")
    log.warning("enrolment refused (%s): %s", reason, message)
    return RequestError(message, reason)


def approve(ledger: Ledger, body: Mapping[str, Any]) -> dict[str, Any]:
    """{"gateway": id, "code": the enrolment code as printed}: the site registration."""
    gateway, code = body.get("gateway"), body.get("code")
    if not isinstance(gateway, str) or not isinstance(code, str):
        raise RequestError("'gateway' and 'code' must be strings")
    db = ledger.db
    raw = enrolments.request_of(db, gateway)
    if raw is None:
        waiting = ", ".join(f"{p['gateway']} ({p['site']})" for p in enrolments.pending(db))
        raise RequestError(
            f"no enrolment request from {gateway!r} has reached this node (has it booted and "
            f"reached the broker?); waiting: {waiting or 'none'}"
        )
    try:
        request = open_enrolment(raw)
    except WireError as exc:
        raise _refuse(ledger, "enrol_malformed", f"{gateway}'s request is invalid: {exc}") from None
    try:
        digest = code_digest(code)
    except ValueError as exc:
        raise _refuse(ledger, "enrol_wrong_code", str(exc)) from None
    used = enrolments.used_by(db, digest)
    if used is not None:
        raise _refuse(ledger, "enrol_code_used", f"this code already enrolled {used}")
    if not request.proves(normalise_code(code)):
        raise _refuse(
            ledger,
            "enrol_wrong_code",
            f"the code is not the one {gateway}'s request was made with (check the code "
            "mlg-flash printed for this gateway)",
        )
    key = GatewayKey(request.by, request.ed25519, request.x25519)
    fact = SiteRegistration(ledger.me.name, ledger.registry_n(), request.site, key, request.meters)
    answer = submit(ledger, fact)
    enrolments.record(db, digest, request.by, request.site, answer["txid"], ledger.clock.now())
    log.info("gateway %s enrolled for site %s (%s)", request.by, request.site, answer["txid"])
    return {**answer, "gateway": request.by, "site": request.site, "meters": list(request.meters)}
