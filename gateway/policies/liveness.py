"""Device liveness: which devices stopped reporting. Pure: no I/O, no asyncio, no clock.

The hot path calls `LivenessTracker.seen` once per message; that is a dict lookup and an
assignment. Everything costly (walking all devices) happens in `stale()`, which the health
endpoint and the self-metrics call every few seconds, never per message.

A device is judged only if its profile has an expected reporting interval: it is stale when it
has been silent for more than `stale_after_intervals` times that interval, or when its last word
on its availability topic (MQTT last will, `offline`) is newer than its last reading. Only
devices that reported since the gateway started are known: one that was already dead before
cannot be told apart from one that never existed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

NS_PER_S = 1_000_000_000

StaleReason = Literal["silent", "offline"]
# (silent since ns, profile_id, device_id, reason, last report ns): sorts longest silent first
_Candidate = tuple[int, str, str, StaleReason, int]

# Home Assistant's and Tasmota's defaults, and the usual boolean spellings of firmware that
# publishes its state as a flag.
_ONLINE = frozenset({"online", "true", "1", "connected", "up"})
_OFFLINE = frozenset({"offline", "false", "0", "disconnected", "down", "lost"})


@dataclass(frozen=True, slots=True)
class StaleDevice:
    profile_id: str
    device_id: str
    reason: StaleReason
    last_seen_ns: int  # newest non-retained report; 0 if only its availability is known
    silent_s: float  # since the last report, or since going offline if it never reported
    expected_interval_s: float  # 0.0 when its profile has no expected interval


class LivenessTracker:
    def __init__(
        self,
        expected_interval_s: Mapping[str, float],
        *,
        stale_after_intervals: float = 3.0,
        max_devices: int = 100_000,
    ) -> None:
        if stale_after_intervals <= 0:
            raise ValueError("stale_after_intervals must be > 0")
        self.stale_after_intervals = stale_after_intervals
        self.max_devices = max_devices
        self._interval_s = dict(expected_interval_s)
        # One dict per judged profile: device_id -> newest report time. Profiles without an
        # interval have no entry, so their devices cost nothing.
        self._last_seen: dict[str, dict[str, int]] = {p: {} for p in self._interval_s}
        # device_id -> when its availability topic said offline; `online` removes the entry,
        # so this holds only the devices that are down (few, normally).
        self._offline_since: dict[str, int] = {}
        self._tracked = 0
        self.overflow_reports = 0  # reports not tracked because max_devices was reached

    @property
    def tracked(self) -> int:
        """Devices with a known last report (availability-only devices not included)."""
        return self._tracked

    def set_intervals(self, expected_interval_s: Mapping[str, float]) -> None:
        """New intervals after a profile reload. Devices of profiles that keep an interval keep
        their last report; those of profiles that lost it are forgotten."""
        self._interval_s = dict(expected_interval_s)
        self._last_seen = {p: self._last_seen.get(p, {}) for p in self._interval_s}
        self._tracked = sum(len(devices) for devices in self._last_seen.values())

    def unknown_profiles(self, known: Iterable[str]) -> list[str]:
        """Profile ids given an interval that no loaded profile has: most likely a typo."""
        return sorted(set(self._interval_s) - set(known))

    # ---- hot path -----------------------------------------------------------------------------

    def seen(self, profile_id: str, device_id: str, received_ns: int, retained: bool) -> None:
        """One message from a device. Retained messages are the broker replaying an old value,
        not a sign of life, so they do not count."""
        if retained:
            return
        devices = self._last_seen.get(profile_id)
        if devices is None:
            return
        previous = devices.get(device_id)
        if previous is None:
            if self._tracked >= self.max_devices:
                self.overflow_reports += 1
                return
            self._tracked += 1
        elif previous >= received_ns:
            return  # a redelivered older message must not move the last report back
        devices[device_id] = received_ns

    # ---- availability (MQTT last will) --------------------------------------------------------

    def availability(self, device_id: str, payload: bytes | str, received_ns: int) -> bool:
        """Record an `online`/`offline` payload from a device's availability topic.

        Retained availability messages do count (unlike readings): a last will is published
        retained precisely so a late subscriber learns the device is gone. Returns False for a
        payload that names neither state, which the caller may count.
        """
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        word = text.strip().lower()
        if word not in _ONLINE and word not in _OFFLINE:
            return False
        self.set_availability(device_id, online=word in _ONLINE, received_ns=received_ns)
        return True

    def set_availability(self, device_id: str, *, online: bool, received_ns: int) -> None:
        """The device said it is online, or its last will said it is offline (a profile's
        `liveness.payload_online/payload_offline` already decided which)."""
        if online:
            self._offline_since.pop(device_id, None)
        elif device_id in self._offline_since or len(self._offline_since) < self.max_devices:
            self._offline_since[device_id] = received_ns
        else:
            self.overflow_reports += 1

    # ---- on demand ----------------------------------------------------------------------------

    def stale_count(self, now_ns: int) -> int:
        """How many devices are stale. O(devices) without building objects: ~10 ms for 100,000."""
        count = 0
        for profile_id, devices in self._last_seen.items():
            cutoff_ns = now_ns - self._limit_ns(profile_id)
            count += sum(1 for last_ns in devices.values() if last_ns < cutoff_ns)
        return count + sum(1 for _ in self._offline_candidates(now_ns))

    def stale(self, now_ns: int, limit: int | None = None) -> list[StaleDevice]:
        """The stale devices, longest silent first; at most `limit` of them.

        Builds objects only for the devices returned: when the broker itself is unreachable,
        every device is stale at once, and the list must still be cheap to ask for.
        """
        found = self._silent_candidates(now_ns)
        found.extend(self._offline_candidates(now_ns))
        chosen = heapq.nsmallest(limit, found) if limit is not None else sorted(found)
        return [
            StaleDevice(
                profile_id,
                device_id,
                reason,
                last_ns,
                (now_ns - since_ns) / NS_PER_S,
                self._interval_s.get(profile_id, 0.0),
            )
            for since_ns, profile_id, device_id, reason, last_ns in chosen
        ]

    def _limit_ns(self, profile_id: str) -> int:
        return int(self._interval_s[profile_id] * self.stale_after_intervals * NS_PER_S)

    def _silent_candidates(self, now_ns: int) -> list[_Candidate]:
        found: list[_Candidate] = []
        for profile_id, devices in self._last_seen.items():
            cutoff_ns = now_ns - self._limit_ns(profile_id)
            found += [
                (last_ns, profile_id, device_id, "silent", last_ns)
                for device_id, last_ns in devices.items()
                if last_ns < cutoff_ns
            ]
        return found

    def _offline_candidates(self, now_ns: int) -> Iterator[_Candidate]:
        """Each device whose last will is newer than its last reading and that is not already
        stale for its silence."""
        for device_id, offline_ns in self._offline_since.items():
            known = False
            for profile_id, devices in self._last_seen.items():
                last_ns = devices.get(device_id)
                if last_ns is None:
                    continue
                known = True
                silent = last_ns < now_ns - self._limit_ns(profile_id)
                if offline_ns > last_ns and not silent:
                    yield last_ns, profile_id, device_id, "offline", last_ns
            if not known:
                yield offline_ns, "", device_id, "offline", 0
