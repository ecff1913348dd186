"""Traffic signal controller at a junction, reporting its status every minute.

The controller runs fixed-time plans by time of day, as most junctions in Vietnamese towns do:
flashing amber late at night (23:00-05:00), an off-peak plan with a 60 s cycle, and on
weekdays a longer peak plan (06:30-09:00 and 16:00-19:30). The running stage follows from the
seconds into the cycle, with each junction's own coordination offset and stage splits. At peak
hours the police sometimes take the junction over from the cabinet's manual panel. A failed
red lamp, which the lamp monitor detects, sends the controller to flashing amber until a crew
replaces it; detector faults come and go; maintenance visits open the cabinet door. The status
is key=value text stamped with the controller's local clock (ICT, no offset).
"""

from __future__ import annotations

import math

from simulators.clock import NS_PER_S, local_hour, local_naive_s, local_weekday
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry, visit_countdown
from simulators.surface import FieldEdit, Key, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 60
MEASUREMENT = "traffic_signal"

# As the profile maps MODE; OFF and ALLRED are valid but this model never reports them.
MODES = {"OFF": 0, "NORMAL": 1, "FLASH": 2, "MANUAL": 3, "ALLRED": 4}
FLASH_PLAN, OFF_PEAK_PLAN, PEAK_PLAN = 1, 2, 3
FLASH_FROM_H, FLASH_UNTIL_H = 23.0, 5.0
PEAK_HOURS = ((6.5, 9.0), (16.0, 19.5))
SATURDAY = 5
OFF_PEAK_CYCLE_S = 60
PEAK_CYCLE_CHOICES = (90, 100, 120)

MANUAL_ONSET_P = 0.0015  # per peak-hour report: a few times a week per junction
MANUAL_REPORTS = (15, 45)
LAMP_FAULT_ONSET_P = 0.0004
LAMP_REPAIR_P = 0.01  # per report: a crew within ~1.5 h on average
DETECTOR_FAULT_ONSET_P = 0.0005
DETECTOR_RECOVERY_P = 0.02
VISIT_ONSET_P = 0.001  # per working-hours report
VISIT_REPORTS = (10, 40)
DECI_PER_UNIT = 10  # TCAB counts 0.1 °C


class SignalController:
    """One junction controller."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.device_id = spec.device_id
        self.topic = f"city/traffic/{spec.district}/{spec.device_id}/signal"
        self.interval_s = INTERVAL_S
        self._tags = {"district": spec.district, "device_id": spec.device_id}
        stages = self._rng.randint(2, 4)
        weights = [self._rng.uniform(0.6, 1.4) for _ in range(stages)]
        self._splits = [weight / sum(weights) for weight in weights]  # share of the cycle
        self._peak_cycle_s = self._rng.choice(PEAK_CYCLE_CHOICES)
        self._offset_s = self._rng.randrange(120)
        self._manual_reports = 0
        self._manual_stage = 1
        self._lamp_fault = False
        self._detector_fault = False
        self._visit_reports = 0

    def next_message(self, sim_time_ms: int) -> Telemetry:
        ts_s = sim_time_ms // 1000
        hour = local_hour(sim_time_ms)
        plan, cycle_s = self._plan(hour, local_weekday(sim_time_ms))
        self._update_events(hour, peak=plan == PEAK_PLAN)
        cycle_time_s = (ts_s - self._offset_s) % cycle_s if cycle_s else 0
        if self._lamp_fault or plan == FLASH_PLAN:
            mode, plan, stage, cycle_s, cycle_time_s = "FLASH", FLASH_PLAN, 0, 0, 0
        elif self._manual_reports:
            mode, plan, stage, cycle_s, cycle_time_s = "MANUAL", 0, self._manual_stage, 0, 0
        else:
            mode, stage = "NORMAL", self._stage_at(cycle_time_s / cycle_s)
        tcab = round(10 * self._cabinet_temperature_c(hour))
        values: dict[str, int | str] = {
            "TS": local_naive_s(ts_s),
            "MODE": mode,
            "PLAN": plan,
            "STAGE": stage,
            "CYC": cycle_s,
            "CT": cycle_time_s,
            "LAMPF": int(self._lamp_fault),
            "DETF": int(self._detector_fault),
            "DOOR": "OPEN" if self._visit_reports else "CLOSED",
            "TCAB": tcab,
        }
        payload = ";".join(f"{key}={value}" for key, value in values.items())
        return Telemetry(payload.encode(), [self._reading(ts_s, values)])

    def _plan(self, hour: float, weekday: int) -> tuple[int, int]:
        """(plan, cycle length s) the timetable selects."""
        if hour >= FLASH_FROM_H or hour < FLASH_UNTIL_H:
            return FLASH_PLAN, 0
        if weekday < SATURDAY and any(start <= hour < end for start, end in PEAK_HOURS):
            return PEAK_PLAN, self._peak_cycle_s
        return OFF_PEAK_PLAN, OFF_PEAK_CYCLE_S

    def _stage_at(self, cycle_fraction: float) -> int:
        boundary = 0.0
        for stage, split in enumerate(self._splits, start=1):
            boundary += split
            if cycle_fraction < boundary:
                return stage
        return len(self._splits)

    def _update_events(self, hour: float, *, peak: bool) -> None:
        rng = self._rng
        if self._manual_reports:
            self._manual_reports -= 1
            if rng.random() < 0.5:  # the officer changes stage every couple of minutes
                self._manual_stage = self._manual_stage % len(self._splits) + 1
        elif peak and rng.random() < MANUAL_ONSET_P:
            self._manual_reports = rng.randint(*MANUAL_REPORTS)
        if self._lamp_fault:
            self._lamp_fault = rng.random() >= LAMP_REPAIR_P
            if not self._lamp_fault:  # the crew opened the cabinet to reset the monitor
                self._visit_reports = max(self._visit_reports, 3)
        else:
            self._lamp_fault = rng.random() < LAMP_FAULT_ONSET_P
        if self._detector_fault:
            self._detector_fault = rng.random() >= DETECTOR_RECOVERY_P
        else:
            self._detector_fault = rng.random() < DETECTOR_FAULT_ONSET_P
        self._visit_reports = visit_countdown(
            rng, hour, self._visit_reports, VISIT_ONSET_P, VISIT_REPORTS
        )

    def _cabinet_temperature_c(self, hour: float) -> float:
        # A closed steel cabinet in the sun: ~6 °C above the air, ~38 °C at mid-afternoon.
        air_c = 26.0 + 5.0 * math.sin(2 * math.pi * (hour - 9.0) / 24)
        return air_c + 6.0 + self._rng.gauss(0.0, 0.4)

    def _reading(self, ts_s: int, values: dict[str, int | str]) -> TruthReading:
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=self._tags,
            time_ns=ts_s * NS_PER_S,
            fields={
                "mode": MODES[str(values["MODE"])],
                "plan": int(values["PLAN"]),
                "stage": int(values["STAGE"]),
                "cycle_s": int(values["CYC"]),
                "cycle_time_s": int(values["CT"]),
                "lamp_fault": int(values["LAMPF"]),
                "detector_fault": int(values["DETF"]),
                "door_open": 1 if values["DOOR"] == "OPEN" else 0,
                "temperature_c": int(values["TCAB"]) / DECI_PER_UNIT,
            },
        )


def _build(spec: DeviceSpec) -> Device:
    return SignalController(spec)


SURFACE = PayloadSurface(
    format="keyvalue",
    time=TimeSlot(Key("TS"), "naive_local"),
    out_of_range=(
        FieldEdit(Key("TCAB"), "temperature_c", 1200),  # 120 °C, max 90
        FieldEdit(Key("STAGE"), "stage", 40),  # max 16
        FieldEdit(Key("CT"), "cycle_time_s", 400),  # max 300
    ),
    wrong_type=(
        FieldEdit(Key("TCAB"), "temperature_c", "ERR"),
        FieldEdit(Key("PLAN"), "plan", "2.5"),  # not an integer
    ),
)

KIND = DeviceKind(
    name="signals",
    label="traffic signal controllers",
    id_prefix="sc",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
