"""The demo regions: real names with national administrative division codes
(GB/T 2260 for provinces, cities and districts; the statistical division codes
for Changning's streets and town). Zhengzhou is loaded to district level."""

from __future__ import annotations

from weldguard.jurisdiction.models import Level

# (code, name, level, parent code)
PLACES: tuple[tuple[str, str, Level, str | None], ...] = (
    ("310000", "上海市", Level.PROVINCE, None),
    ("310100", "上海市", Level.CITY, "310000"),
    ("310105", "长宁区", Level.DISTRICT, "310100"),
    ("310105001", "华阳路街道", Level.STREET, "310105"),
    ("310105002", "江苏路街道", Level.STREET, "310105"),
    ("310105004", "新华路街道", Level.STREET, "310105"),
    ("310105005", "周家桥街道", Level.STREET, "310105"),
    ("310105006", "天山路街道", Level.STREET, "310105"),
    ("310105008", "仙霞新村街道", Level.STREET, "310105"),
    ("310105009", "虹桥街道", Level.STREET, "310105"),
    ("310105010", "程家桥街道", Level.STREET, "310105"),
    ("310105011", "北新泾街道", Level.STREET, "310105"),
    ("310105102", "新泾镇", Level.STREET, "310105"),
    ("410000", "河南省", Level.PROVINCE, None),
    ("410100", "郑州市", Level.CITY, "410000"),
    ("410102", "中原区", Level.DISTRICT, "410100"),
    ("410103", "二七区", Level.DISTRICT, "410100"),
    ("410104", "管城回族区", Level.DISTRICT, "410100"),
    ("410105", "金水区", Level.DISTRICT, "410100"),
    ("410108", "惠济区", Level.DISTRICT, "410100"),
    ("410171", "郑州经济技术开发区", Level.DISTRICT, "410100"),
)

# Rough centres (WGS-84) for demo sites, so maps show plausible places.
CENTRES: dict[str, tuple[float, float]] = {
    "310105001": (31.2215, 121.4260),
    "310105002": (31.2217, 121.4336),
    "310105004": (31.2077, 121.4260),
    "310105005": (31.2166, 121.4061),
    "310105006": (31.2125, 121.4092),
    "310105008": (31.2050, 121.3960),
    "310105009": (31.1990, 121.4100),
    "310105010": (31.1965, 121.3840),
    "310105011": (31.2190, 121.3830),
    "310105102": (31.2210, 121.3650),
    "410102": (34.7480, 113.6120),
    "410103": (34.7300, 113.6400),
    "410104": (34.7460, 113.6780),
    "410105": (34.8000, 113.6600),
    "410108": (34.8680, 113.6200),
    "410171": (34.7200, 113.7600),
}
