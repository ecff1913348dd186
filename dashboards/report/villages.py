"""Broadband per village (thôn, khu phố): the plan's target is every village covered by mobile
broadband and FTTH, so the report says, per village of the town's register and per class,
whether a speed test measured it in the period and whether its median met the target.

Speed-test probes publish under city/connectivity/<ward>/<village>/<probe>/speedtest, so each
test carries a `village` tag (device_profiles/connectivity/speedtest-probe-csv.yaml). A test
without one (stored before probes were placed) is counted under "unknown village".
"""

from __future__ import annotations

from typing import NamedTuple

from dashboards.report.broadband import (
    BELOW_TARGET,
    CLASSES,
    NO_TEST,
    PERCENTILE_COLUMNS,
    PROBE,
    UNKNOWN_VILLAGE,
    class_label,
    class_where,
    percentile_cells,
    percentiles,
    probe_medians,
)
from dashboards.report.figures import Period, RunQuery, percent
from dashboards.report.tables import VILLAGE, WARD, Cell, Table, columns


class Village(NamedTuple):
    ward: str  # the ward's slug, as in the `district` tag
    slug: str  # as in the `village` tag
    name: str


# The town's register of villages: Mỹ Hào's seven wards, four villages (khu phố) each, the
# places the simulated probes are installed in. The wards are Mỹ Hào's; the village names are in
# the local manner (Bần and Phố Nối are Bần Yên Nhân's) but not checked against the town's
# official list, so a deployment lists its own register here.
REGISTER = (
    Village("ban-yen-nhan", "ban", "Bần"),
    Village("ban-yen-nhan", "yen-nhan", "Yên Nhân"),
    Village("ban-yen-nhan", "pho-noi", "Phố Nối"),
    Village("ban-yen-nhan", "nghia", "Nghĩa"),
    Village("di-su", "di-su", "Dị Sử"),
    Village("di-su", "phuc-bo", "Phúc Bố"),
    Village("di-su", "hoang-xa", "Hoàng Xá"),
    Village("di-su", "ngo-xa", "Ngô Xá"),
    Village("phan-dinh-phung", "xuan-dao", "Xuân Đào"),
    Village("phan-dinh-phung", "tien-phong", "Tiền Phong"),
    Village("phan-dinh-phung", "lac-cau", "Lạc Cầu"),
    Village("phan-dinh-phung", "phuc-lam", "Phúc Lâm"),
    Village("nhan-hoa", "lo-xa", "Lỗ Xá"),
    Village("nhan-hoa", "van-xa", "Văn Xá"),
    Village("nhan-hoa", "vinh-xa", "Vĩnh Xá"),
    Village("nhan-hoa", "tu-ha", "Tử Hà"),
    Village("bach-sam", "bach-sam", "Bạch Sam"),
    Village("bach-sam", "ngoc-lich", "Ngọc Lịch"),
    Village("bach-sam", "tra-phuong", "Trà Phương"),
    Village("bach-sam", "dong-xa", "Đông Xá"),
    Village("minh-duc", "dong-mai", "Đông Mai"),
    Village("minh-duc", "minh-khai", "Minh Khai"),
    Village("minh-duc", "ha-dong", "Hạ Đông"),
    Village("minh-duc", "quang-trung", "Quang Trung"),
    Village("phung-chi-kien", "phu-huu", "Phú Hữu"),
    Village("phung-chi-kien", "man-xuyen", "Mãn Xuyên"),
    Village("phung-chi-kien", "trung-hau", "Trung Hậu"),
    Village("phung-chi-kien", "quan-do", "Quán Đỏ"),
)
NAMES = {(village.ward, village.slug): village.name for village in REGISTER}
NAME = ("Tên", "Name")


def villages(run: RunQuery, period: Period) -> tuple[Table, Table, Table]:
    """Per village and class: percentiles against the target; per class: the register's
    villages measured and meeting it; the register's villages without a test or below it."""
    table = Table(
        "broadband_villages",
        "Tốc độ tải xuống theo thôn/khu phố",
        "Download speed per village",
        columns(WARD, VILLAGE, NAME, ("Loại", "Class"), *PERCENTILE_COLUMNS),
    )
    rows: dict[tuple[str, str, int], list[Cell]] = {}
    medians: dict[tuple[str, str, str], float] = {}  # (ward, village, class) -> median
    for order, (name, (_, _, target)) in enumerate(CLASSES.items()):
        where = class_where(period, name)
        per_probe = probe_medians(run, where)
        for (ward, village), found in percentiles(run, where, target, PROBE[:2]).items():
            if not found["tests"]:
                continue
            medians[ward, village, name] = found["p50"]
            mine = [m for (w, v, _), (_, m) in per_probe.items() if (w, v) == (ward, village)]
            place = [ward, village or UNKNOWN_VILLAGE, NAMES.get((ward, village))]
            cells = percentile_cells(found, target, mine)
            rows[ward, village, order] = [*place, class_label(name), *cells]
    table.rows = [rows[key] for key in sorted(rows)]
    return table, _coverage(medians), _gaps(medians)


def _coverage(medians: dict[tuple[str, str, str], float]) -> Table:
    table = Table(
        "village_coverage",
        "Thôn/khu phố được đo kiểm và đạt chỉ tiêu",
        "Villages measured and meeting the target",
        columns(
            ("Loại", "Class"),
            ("Thôn/khu phố", "Villages"),
            ("Có đo kiểm", "With tests"),
            ("% có đo kiểm", "% with tests"),
            ("Đạt chỉ tiêu", "Meeting the target"),
            ("% đạt", "% meeting"),
        ),
        note_vi="Đạt: trung vị tốc độ tải xuống của thôn/khu phố không thấp hơn chỉ tiêu. Danh "
        "mục thôn/khu phố của thị xã: dashboards/report/villages.py.",
        note_en="Meeting: the village's median download is at or above the target. Villages "
        "are the town's register (dashboards/report/villages.py).",
    )
    for name, (_, _, target) in CLASSES.items():
        measured = [medians.get((v.ward, v.slug, name)) for v in REGISTER]
        tested = [median for median in measured if median is not None]
        meeting = sum(median >= target for median in tested)
        table.rows.append(
            [
                class_label(name),
                len(REGISTER),
                len(tested),
                percent(len(tested), len(REGISTER)),
                meeting,
                percent(meeting, len(REGISTER)),
            ]
        )
    return table


def _gaps(medians: dict[tuple[str, str, str], float]) -> Table:
    table = Table(
        "coverage_gaps_villages",
        "Thôn/khu phố chưa phủ / chưa đạt",
        "Coverage gaps per village",
        columns(WARD, VILLAGE, NAME, ("Loại", "Class"), ("Vấn đề", "Gap")),
        note_vi="Thôn/khu phố trong danh mục của thị xã không có đo kiểm trong kỳ, hoặc có trung "
        "vị dưới chỉ tiêu.",
        note_en="Villages of the town's register without a speed test of the class in the "
        "period, or with a median below its target.",
    )
    for village in REGISTER:
        for name, (_, _, target) in CLASSES.items():
            median = medians.get((village.ward, village.slug, name))
            gap = NO_TEST if median is None else BELOW_TARGET if median < target else None
            if gap is not None:
                place = [village.ward, village.slug, village.name]
                table.rows.append([*place, class_label(name), gap])
    return table
