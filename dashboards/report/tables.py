"""The report's tables: a Vietnamese and an English name for every title and column."""

from __future__ import annotations

from dataclasses import dataclass, field

Cell = str | int | float | None


@dataclass(frozen=True, slots=True)
class Column:
    vi: str
    en: str


@dataclass(slots=True)
class Table:
    """One table of the report; `key` names its CSV file."""

    key: str
    vi: str
    en: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    note_vi: str = ""
    note_en: str = ""

    def column(self, en: str) -> list[Cell]:
        """The cells of the column whose English name is `en` (for charts and tests)."""
        index = next(i for i, c in enumerate(self.columns) if c.en == en)
        return [row[index] for row in self.rows]


def columns(*pairs: tuple[str, str]) -> list[Column]:
    return [Column(vi, en) for vi, en in pairs]


WARD = ("Phường/xã", "Ward/commune")
VILLAGE = ("Thôn/khu phố", "Village")
DEVICE = ("Thiết bị", "Device")
DOMAIN = ("Lĩnh vực", "Domain")
KIND = ("Loại thiết bị", "Device kind")
