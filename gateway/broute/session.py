"""One B-route meter behind a dongle: joined on demand, kept joined, asked for properties.

`ensure` scans for the meter's PAN (cached until the meter is gone), derives its
link-local address and authenticates with PANA. When the session's lifetime ends the
dongle re-authenticates by itself (EVENT 29, then 25); if that fails (24) the session
joins again. A request whose answer is lost is sent again up to `retries` times; a
meter that answers nothing twice in a row is taken as gone, and the next `ensure` scans
again. A refused password raises `PasswordRefused` at once: the poller backs off, it
never retries in a loop. Times are real seconds (the radio's).
"""

from __future__ import annotations

import logging
import time
from collections import deque

from gateway.broute import echonet
from gateway.broute.credentials import Credentials
from gateway.broute.echonet import EchonetError, Frame
from gateway.broute.skstack import Dongle, Pan
from gateway.errors import BusError, NoAnswerError

log = logging.getLogger("mlg.gateway.broute")

GONE_AFTER = 2
"""Requests in a row without any answer after which the meter is scanned for again."""


class PasswordRefused(BusError):
    """PANA authentication failed: the B-route ID or password is wrong."""


class NoBeacon(BusError):
    """No PAN answered the scan: the meter is out of range, or not a B-route meter."""


class BrouteSession:
    def __init__(
        self,
        dongle: Dongle,
        creds: Credentials,
        answer_timeout_s: float = 10.0,
        retries: int = 2,
        scan_duration: int = 6,
    ) -> None:
        self.dongle = dongle
        self._creds = creds
        self.answer_timeout_s = answer_timeout_s
        self.retries = retries
        self.scan_duration = scan_duration
        self.pan: Pan | None = None
        self.ip6 = ""
        self.joined = False
        self.infs: deque[Frame] = deque(maxlen=64)
        self.bad_frames = 0
        self.lost = 0
        self.joins = 0
        self.scans = 0
        self._silent = 0
        self._tid = 0

    def ensure(self) -> None:
        """Scan (unless the PAN is known), authenticate; raise what stops it."""
        if self.joined:
            self._follow_events()
            if self.joined:
                return
        self.dongle.open()
        self.dongle.set_credentials(self._creds.rbid, self._creds.password)
        if self.pan is None:
            self.scans += 1
            pan = self.dongle.scan(self.scan_duration)
            if pan is None:
                raise NoBeacon(
                    f"no B-route meter answered the scan from {self.dongle.where}: is the"
                    " dongle within range of the meter, and the B-route service started?"
                )
            self.pan = pan
            self.ip6 = self.dongle.link_local(pan.mac)
            log.info(
                "B-route meter found on channel %d, PAN %04X, LQI %d",
                pan.channel,
                pan.pan_id,
                pan.lqi,
            )
        self.joins += 1
        if not self.dongle.join(self.pan, self.ip6):
            raise PasswordRefused(
                f"the meter refused PANA authentication via {self.dongle.where}: the B-route"
                " ID or password is wrong (check the credentials file against the utility's"
                " letter)"
            )
        self.joined = True
        self._silent = 0
        log.info("PANA session with the meter at %s established", self.ip6)

    def drop(self, rescan: bool = False) -> None:
        """Forget the session (and the PAN with `rescan`)."""
        self.joined = False
        if rescan:
            self.pan = None

    def _follow_events(self) -> None:
        """React to what the dongle reported: expiry, re-authentication, session end."""
        d = self.dongle
        while d.events:
            ev = d.events.popleft()
            if ev.num == 0x29:
                log.info("PANA session lifetime over: the dongle re-authenticates")
                done = d.wait_event({0x24, 0x25}, 40.0)
                if done is None or done.num == 0x24:
                    log.warning("re-authentication failed: joining again")
                    self.joined = False
            elif ev.num in (0x24, 0x26, 0x27, 0x28):
                self.joined = False
            elif ev.num == 0x32:
                log.warning("the dongle's transmission limit is reached: waiting")
                d.wait_event({0x33}, 60.0)

    def _next_tid(self) -> int:
        self._tid = (self._tid + 1) & 0xFFFF
        return self._tid

    def request(self, data: bytes, tid: int) -> Frame:
        """Send `data` (a request with `tid`) until an answer with that tid comes back."""
        for attempt in range(self.retries + 1):
            self._follow_events()
            if not self.joined:
                self.ensure()
            self.dongle.sendto(self.ip6, data)
            answer = self._answer(tid, time.monotonic() + self.answer_timeout_s)
            if answer is not None:
                self._silent = 0
                return answer
            self.lost += 1
            log.info("no answer to request %04X (attempt %d)", tid, attempt + 1)
        self._silent += 1
        if self._silent >= GONE_AFTER:
            log.warning("the meter answers nothing: scanning for it again")
            self.drop(rescan=True)
        raise NoAnswerError(f"B-route meter at {self.dongle.where}: no answer to {tid:04X}")

    def _answer(self, tid: int, deadline: float) -> Frame | None:
        d = self.dongle
        while True:
            while d.udp:
                udp = d.udp.popleft()
                if udp.src != self.ip6 or udp.src_port != echonet.PORT:
                    continue
                try:
                    frame = Frame.decode(udp.data)
                except EchonetError as exc:
                    self.bad_frames += 1
                    log.warning("bad frame from the meter: %s", exc)
                    continue
                if frame.seoj != echonet.SMART_METER:
                    continue
                if frame.esv in (echonet.INF, echonet.INFC):
                    self.infs.append(frame)
                elif frame.tid == tid:
                    return frame
            if time.monotonic() >= deadline:
                return None
            d.pump(min(0.02, max(deadline - time.monotonic(), 0)))

    def get(self, epcs: list[int]) -> Frame:
        """Get_Res (0x72) or Get_SNA (0x52) for `epcs`."""
        tid = self._next_tid()
        frame = self.request(echonet.get_request(tid, epcs), tid)
        if frame.esv not in (echonet.GET_RES, echonet.GET_SNA):
            raise BusError(f"unexpected answer ESV 0x{frame.esv:02X} to a Get")
        return frame

    def setc(self, props: list[tuple[int, bytes]]) -> None:
        tid = self._next_tid()
        frame = self.request(echonet.set_request(tid, props), tid)
        if frame.esv != echonet.SET_RES:
            raise BusError(f"the meter refused to set {[hex(e) for e, _ in props]}")

    def notifications(self) -> list[Frame]:
        """INF frames received so far (the meter's 30-minute announcements)."""
        self.dongle.pump(0.0)
        self._answer(-1, 0.0)
        out = list(self.infs)
        self.infs.clear()
        return out

    def close(self) -> None:
        if self.joined:
            self.dongle.terminate()
        self.joined = False
        self.dongle.close()
