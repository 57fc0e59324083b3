"""Demo data: 上海市长宁区 (ten streets/towns) and 郑州市 (six districts) with a
fictitious but plausible register, machines with chips, welders with
certificates in every status, and one demo account per role and level.

Everything goes through the services and the register's validation, so the demo
obeys the same rules as real data. The content is deterministic for a given
``rng_seed`` (machine codes and ciphertexts aside, which the services draw from
the system's randomness). Seeding twice creates nothing the second time.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from weldguard.auth.models import Role
from weldguard.auth.repository import UserRepository
from weldguard.auth.scope import Scope
from weldguard.auth.service import AuthService, NewUser
from weldguard.config import Settings
from weldguard.domain.certificates import (
    CertificateFacts,
    CertificateKind,
    CertificateStatus,
    add_years,
    certificate_status,
)
from weldguard.domain.ids import make_credit_code, make_id_number
from weldguard.enterprise.fields import PlaceResolver, validate_enterprise
from weldguard.enterprise.models import Enterprise, Site
from weldguard.enterprise.repository import EnterpriseRepository
from weldguard.enterprise.service import EnterpriseService
from weldguard.jurisdiction.service import CROWDED, CROWDED_SUBTYPES
from weldguard.machine.models import ChipBinding, Machine, MachineStatus, WeldingProcess
from weldguard.machine.service import MachineInput, MachineService
from weldguard.seed.places import CENTRES
from weldguard.seed.reference import load_reference
from weldguard.welder.identity import IdentityVault
from weldguard.welder.models import Certificate, Employment, Welder
from weldguard.welder.service import CertificateInput, WelderInput, WelderService, status_of

# Published in the README and printed by `make demo`: demo accounts only.
DEMO_PASSWORD = "weldguard2026"  # noqa: S105
# The first demo enterprise; its presence means the demo is already loaded.
MARKER_CREDIT_CODE = make_credit_code("91310105MA1WGD001")
MARKER_NAME = "上海长宁华阳机电设备安装有限公司"

_ADMIN_SCOPE = Scope(role=Role.ADMIN, user_id=0, everything=True)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# --------------------------------------------------------------------------
# Places
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoPlace:
    code: str  # street code in 长宁, district code in 郑州 (no street level)
    city: str
    district: str
    street: str
    brand: str  # short local word for enterprise names
    enterprises: int
    roads: tuple[str, ...]  # real roads of the place, for addresses


# code, city, district, street ("-": none), name word, enterprises, roads…
_PLACE_TABLE = """
310105001 上海市 长宁区 华阳路街道 华阳 5 长宁路 愚园路 安化路 武夷路 定西路
310105002 上海市 长宁区 江苏路街道 江苏 4 愚园路 江苏路 长宁路 武定西路 宣化路
310105004 上海市 长宁区 新华路街道 新华 4 新华路 番禺路 法华镇路 淮海西路 延安西路
310105005 上海市 长宁区 周家桥街道 周桥 4 长宁路 芙蓉江路 天山路 中山西路 凯旋路
310105006 上海市 长宁区 天山路街道 天山 5 天山路 娄山关路 遵义路 茅台路 延安西路
310105008 上海市 长宁区 仙霞新村街道 仙霞 4 仙霞路 茅台路 水城路 虹古路 威宁路
310105009 上海市 长宁区 虹桥街道 虹桥 5 虹桥路 延安西路 古北路 伊犁路 红宝石路
310105010 上海市 长宁区 程家桥街道 程桥 4 虹桥路 哈密路 虹井路 程家桥路 剑河路
310105011 上海市 长宁区 北新泾街道 北新泾 4 天山西路 哈密路 北渔路 新渔路 金钟路
310105102 上海市 长宁区 新泾镇 新泾 6 北翟路 金钟路 天山西路 协和路 福泉路 淞虹路
410102 郑州市 中原区 - 中原 5 中原路 建设路 桐柏路 伏牛路 嵩山路 棉纺路 秦岭路
410103 郑州市 二七区 - 二七 4 大学路 航海路 嵩山南路 淮河路 兴华街 长江路
410104 郑州市 管城回族区 - 管城 4 紫荆山路 城东路 航海东路 商城路 东大街
410105 郑州市 金水区 - 金水 5 花园路 农业路 文化路 经三路 黄河路 东风路
410108 郑州市 惠济区 - 惠济 3 江山路 天河路 开元路 英才街 长兴路
410171 郑州市 郑州经济技术开发区 - 经开 6 经开第八大街 经开第十五大街 航海东路 经北四路 经南五路
"""


def _parse_places(table: str) -> tuple[DemoPlace, ...]:
    places = []
    for line in table.strip().splitlines():
        code, city, district, street, brand, count, *roads = line.split()
        street = "" if street == "-" else street
        places.append(DemoPlace(code, city, district, street, brand, int(count), tuple(roads)))
    return tuple(places)


PLACES = _parse_places(_PLACE_TABLE)

# --------------------------------------------------------------------------
# Enterprise categories: sector or crowded-place sub-type
# --------------------------------------------------------------------------

BRANDS_SH = _words(
    "宏达 恒信 鑫盛 安捷 联创 瑞丰 永固 立信 博远 申联 "
    "沪丰 金桥 华东 申通 东方 鼎诚 祥和 振华 汇成 凯联"
)
BRANDS_ZZ = _words(
    "中原 嵩山 黄河 商都 绿城 宏达 豫龙 天地 鑫源 华瑞 "
    "郑大 恒通 汇丰 长城 中联 永安 金盾 兴业 博达 亚星"
)

# Name templates per category. {p}: 上海长宁 / 上海 / 郑州 / 河南, {b}: a brand,
# {r}: a road of the place without 路.
NAME_TEMPLATES: dict[str, tuple[str, ...]] = {
    "工贸": (
        "{p}{b}机电设备安装有限公司", "{p}{b}金属制品有限公司", "{p}{b}钢结构工程有限公司",
        "{p}{b}电梯工程有限公司", "{p}{b}汽车维修服务有限公司", "{p}{b}不锈钢制品厂",
        "{p}{b}暖通设备工程有限公司", "{p}{b}重型钢构有限公司", "{p}{b}机械制造有限公司",
        "{p}{b}门窗幕墙工程有限公司",
    ),
    "危化": (
        "{p}{b}化工有限公司", "{p}{b}工业气体有限公司", "{p}{b}石油{r}加油站",
        "{p}{b}精细化工有限公司",
    ),
    "施工工地": (
        "{p}{b}建设工程有限公司{r}项目部", "{p}{b}建筑安装工程有限公司{r}地块项目部",
        "{p}{b}城建集团有限公司{r}改造项目部",
    ),
    "科研机构": ("{p}{b}材料科学研究所", "{p}{b}焊接技术研究院有限公司", "{p}{b}机械研究所"),
    "电力": ("{p}{b}电力工程有限公司", "{p}{b}供电服务有限公司", "{p}{b}电力设备检修有限公司"),
    "航空航天": ("{p}{b}航空机务工程有限公司", "{p}{b}航空设备制造有限公司"),
    "医院": ("{p}{b}中西医结合医院", "{p}{b}骨科医院", "{p}{b}妇产医院"),
    "养老院": ("{p}{b}养老院", "{p}{b}颐养院", "{p}{b}长者照护之家"),
    "学校": ("{p}{b}实验学校", "{p}{b}职业技术学校", "{p}{b}外国语中学"),
    "商场（市场）": ("{p}{b}购物中心", "{p}{b}农贸市场", "{p}{b}广场商业管理有限公司"),
    "宾馆饭店": ("{p}{b}大酒店", "{p}{b}宾馆", "{p}{b}国际饭店有限公司"),
    "休闲娱乐场所": ("{p}{b}影城", "{p}{b}KTV", "{p}{b}健身会所"),
    "其他人员密集场所": ("{p}{b}体育馆", "{p}{b}会展中心", "{p}{b}社区文化活动中心"),
}  # fmt: skip

SITE_NAMES: dict[str, tuple[str, ...]] = {
    key: _words(value)
    for key, value in {
        "工贸": "一号车间 二号车间 焊接车间 机加工车间 成品仓库",
        "危化": "储罐区 装卸区 维修车间 管廊",
        "施工工地": "主体结构施工区 钢结构加工棚 地下室施工区 塔吊基础区",
        "科研机构": "实验楼 中试车间 焊接实验室",
        "电力": "变电站检修区 电缆隧道 检修车间",
        "航空航天": "机库 部件维修车间 地面设备间",
        "医院": "门诊楼 住院部 后勤动力楼 地下车库",
        "养老院": "主楼 后勤楼 食堂",
        "学校": "教学楼 食堂 体育馆 学生宿舍楼",
        "商场（市场）": "地下车库 屋顶设备层 装卸货区 地下一层商业区",
        "宾馆饭店": "厨房 设备层 地下车库",
        "休闲娱乐场所": "主厅 设备间",
        "其他人员密集场所": "主场馆 设备层 地下车库",
    }.items()
}

# Hot work is barred inside these windows (days 1 = Monday … 7 = Sunday).
_ALL_DAYS = [1, 2, 3, 4, 5, 6, 7]
_WEEKDAYS = [1, 2, 3, 4, 5]
OPENING_HOURS: dict[str, list[dict[str, object]]] = {
    "医院": [{"days": _ALL_DAYS, "open": "07:30", "close": "20:00"}],
    "养老院": [{"days": _ALL_DAYS, "open": "00:00", "close": "24:00"}],
    "学校": [{"days": _WEEKDAYS, "open": "07:00", "close": "18:00"}],
    "商场（市场）": [{"days": _ALL_DAYS, "open": "10:00", "close": "22:00"}],
    "宾馆饭店": [{"days": _ALL_DAYS, "open": "00:00", "close": "24:00"}],
    "休闲娱乐场所": [
        {"days": _WEEKDAYS, "open": "12:00", "close": "02:00"},
        {"days": [6, 7], "open": "10:00", "close": "03:00"},
    ],
    "其他人员密集场所": [{"days": _ALL_DAYS, "open": "09:00", "close": "21:00"}],
}

# category: (weight when drawing enterprises, fewest machines, most machines)
CATEGORIES: dict[str, tuple[int, int, int]] = {
    "工贸": (26, 8, 22),
    "施工工地": (18, 8, 18),
    "危化": (5, 5, 12),
    "科研机构": (4, 3, 8),
    "电力": (4, 5, 12),
    "航空航天": (3, 6, 14),
    "医院": (5, 1, 4),
    "养老院": (4, 1, 2),
    "学校": (5, 1, 3),
    "商场（市场）": (6, 2, 5),
    "宾馆饭店": (4, 1, 3),
    "休闲娱乐场所": (3, 1, 2),
    "其他人员密集场所": (3, 1, 3),
}


def _sector_of(category: str) -> tuple[str, str | None]:
    if category in CROWDED_SUBTYPES:
        return CROWDED, category
    return category, None


# --------------------------------------------------------------------------
# Machines
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineModel:
    make: str
    model: str
    process: WeldingProcess
    rated_current_a: int


# make | model | process | rated current (A); resistance welders: primary current.
_MODEL_TABLE = """
瑞凌|ZX7-400|manual_arc|400
瑞凌|ZX7-315|manual_arc|315
瑞凌|NB-350|mig_mag|350
瑞凌|WS-400|tig|400
瑞凌|LGK-100|plasma_cutting|100
瑞凌|MZ-1000|submerged_arc|1000
佳士|ZX7-250|manual_arc|250
佳士|NB-500|mig_mag|500
佳士|WSM-315|tig|315
佳士|LGK-60|plasma_cutting|60
佳士|GP-15|brazing|40
奥太|NBC-350|mig_mag|350
奥太|NB-500|mig_mag|500
奥太|ZX7-630|manual_arc|630
奥太|MZ-1250|submerged_arc|1250
时代|ZX7-400|manual_arc|400
时代|WSM-400|tig|400
时代|DN-100|resistance|260
时代|DN-25|resistance|66
林肯|Invertec V350-PRO|manual_arc|350
林肯|Power Wave S500|mig_mag|500
林肯|Idealarc DC-600|submerged_arc|600
松下|YD-350GR|mig_mag|350
松下|YD-500GR|mig_mag|500
松下|YC-300WX|tig|300
米勒|XMT 350|mig_mag|350
米勒|Dynasty 280|tig|280
米勒|Syncrowave 300|tig|300
伊萨|Warrior 400i|mig_mag|400
伊萨|Caddy Tig 2200i|tig|220
伊萨|Aristo Mig 5000i|mig_mag|500
"""
MODELS: tuple[MachineModel, ...] = tuple(
    MachineModel(make, model, WeldingProcess(process), int(current))
    for make, model, process, current in (
        line.split("|") for line in _MODEL_TABLE.strip().splitlines()
    )
)
SERIAL_PREFIX = dict(
    pair.split(":")
    for pair in _words("瑞凌:RL 佳士:JS 奥太:AT 时代:SD 林肯:LE 松下:PA 米勒:MI 伊萨:ES")
)

MA = WeldingProcess.MANUAL_ARC
MIG = WeldingProcess.MIG_MAG
TIG = WeldingProcess.TIG
SAW = WeldingProcess.SUBMERGED_ARC
CUT = WeldingProcess.PLASMA_CUTTING
RES = WeldingProcess.RESISTANCE
BRZ = WeldingProcess.BRAZING

# Which processes an enterprise of a category mostly uses (repeats weigh more).
PROCESS_MIX: dict[str, tuple[WeldingProcess, ...]] = {
    "工贸": (MA, MA, MIG, MIG, MIG, TIG, CUT, SAW, RES),
    "施工工地": (MA, MA, MA, MA, MIG, CUT),
    "危化": (MA, MA, TIG, TIG),
    "科研机构": (TIG, TIG, MIG, RES, BRZ, CUT),
    "电力": (MA, MA, TIG, MIG),
    "航空航天": (TIG, TIG, TIG, RES, MIG),
}
CROWDED_PROCESSES = (MA, MA, MA, TIG, BRZ)  # repairs, railings, air-conditioning pipes

INSTALLERS = _words("陈建国 刘海涛 周志强 吴晓东 王立新 赵永刚 孙伟 马俊杰")

# --------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------

SURNAMES = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏"
    "魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶贺顾毛郝龚邵万"
)
GIVEN_MALE = _words(
    "伟 强 磊 军 勇 杰 涛 斌 超 明 刚 平 辉 鹏 华 飞 鑫 波 宁 凯 建国 建军 建华 国强 志强 志刚 "
    "海涛 海峰 晓东 永刚 永强 立新 红军 卫东 德明 宝山 长江 金龙 春生 福生 俊杰 文斌 家豪 子轩 "
    "浩然 宇航 振华 广林 新民 庆丰 树林 学文 保国 铁柱 大勇 小龙 玉林 云峰 天佑 少华"
)
GIVEN_FEMALE = _words("丽 敏 静 燕 芳 娟 霞 秀英 桂兰 玉梅 红梅 晓燕")

# Area codes (GB/T 2260, as printed in ID numbers) by where welders come from.
AREA_SHANGHAI = _words("310105 310112 310115 310104 310107 310113")
AREA_HENAN = _words("410102 410105 410181 410122 410183 411323 411623 412822")
AREA_MIGRANT = _words(
    "340826 340421 342623 320923 321323 511621 421127 362330 360722 430524 371725"
)
MOBILE_PREFIXES = _words(
    "139 138 137 136 135 158 159 186 187 188 189 152 151 150 180 181 177 133 153 173 199"
)

# --------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------

SO = CertificateKind.SPECIAL_OPERATION
SE = CertificateKind.SPECIAL_EQUIPMENT
CO = CertificateKind.CONSTRUCTION
VALIDITY_YEARS = {SO: 6, SE: 4, CO: 2}
SOURCE = {SO: "应急管理部门", SE: "市场监管部门", CO: "住建部门"}
# (kind, region of the holder for 特种作业 / of the employer otherwise)
AUTHORITIES: dict[tuple[CertificateKind, str], tuple[str, ...]] = {
    (SO, "310"): ("上海市应急管理局",),
    (SO, "410"): ("河南省应急管理厅", "郑州市应急管理局"),
    (SO, "other"): ("安徽省应急管理厅", "江苏省应急管理厅", "四川省应急管理厅", "湖北省应急管理厅"),
    (SE, "310"): ("上海市市场监督管理局",),
    (SE, "410"): ("郑州市市场监督管理局", "河南省市场监督管理局"),
    (CO, "310"): ("上海市住房和城乡建设管理委员会",),
    (CO, "410"): ("郑州市城乡建设局", "河南省住房和城乡建设厅"),
}

V = CertificateStatus.VALID
EXPIRING = CertificateStatus.EXPIRING
EXPIRED = CertificateStatus.EXPIRED
OVERDUE = CertificateStatus.REVIEW_OVERDUE
PENDING = CertificateStatus.PENDING_VERIFICATION
REVOKED = CertificateStatus.REVOKED

# Share of certificates per non-valid status, and the minimum count of each.
STATUS_QUOTAS: tuple[tuple[CertificateStatus, float, int], ...] = (
    (OVERDUE, 0.06, 24),
    (EXPIRING, 0.09, 36),
    (EXPIRED, 0.10, 36),
    (PENDING, 0.02, 12),
    (REVOKED, 0.01, 6),
)
NO_CERTIFICATE_SHARE = 0.08
MOBILE_WELDER_SHARE = 0.05

# --------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------


@dataclass
class DemoSummary:
    created: bool  # False when the demo was already there
    enterprises: int = 0
    sites: int = 0
    machines: int = 0
    chipped_machines: int = 0
    retired_machines: int = 0
    chip_bindings: int = 0
    welders: int = 0
    welders_without_certificate: int = 0
    mobile_welders: int = 0  # employed by more than one enterprise
    certificates: int = 0
    certificates_by_status: dict[str, int] = field(default_factory=dict)
    # (username, role label, what the account sees)
    accounts: list[tuple[str, str, str]] = field(default_factory=list)
    password: str = DEMO_PASSWORD
    # 作业票 N 张 (by status), mobile jobs, small-works filings (seed/demo_permits.py)
    hot_work: str = ""

    def lines(self) -> list[str]:
        """Human-readable summary for the CLI (Simplified Chinese)."""
        by_status = "，".join(
            f"{CertificateStatus(k).label} {v}"
            for k, v in sorted(self.certificates_by_status.items())
        )
        out = [
            "演示数据已就绪" if self.created else "演示数据已存在，未重复创建",
            f"企业 {self.enterprises} 家（作业场所 {self.sites} 个）",
            f"焊机 {self.machines} 台：已加芯 {self.chipped_machines} 台，已报废 "
            f"{self.retired_machines} 台，芯片绑定记录 {self.chip_bindings} 条",
            f"焊工 {self.welders} 人（无证 {self.welders_without_certificate} 人，流动焊工 "
            f"{self.mobile_welders} 人）",
            f"证书 {self.certificates} 本：{by_status}",
            *([self.hot_work] if self.hot_work else []),
            f"演示账号（密码均为 {self.password}）：",
        ]
        width = max((len(u) for u, _, _ in self.accounts), default=0)
        out += [f"  {u.ljust(width)}  {label}  {scope}" for u, label, scope in self.accounts]
        return out


# --------------------------------------------------------------------------
# Generation helpers
# --------------------------------------------------------------------------


@dataclass
class _EnterprisePlan:
    place: DemoPlace
    category: str
    name: str
    credit_code: str
    address: str
    legal_rep_name: str
    legal_rep_phone: str
    contact_phone: str
    production_status: str
    mobile_work: bool
    machines: int
    welders: int
    enterprise: Enterprise | None = None
    sites: list[Site] = field(default_factory=list)


@dataclass
class _WelderPlan:
    name: str
    id_number: str
    phone: str
    home: _EnterprisePlan
    extra_employers: list[_EnterprisePlan] = field(default_factory=list)
    certificates: list[tuple[CertificateKind, CertificateStatus]] = field(default_factory=list)


class _Generator:
    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng = rng
        self.today = today
        self.names: set[str] = set()
        self.credit_codes: set[str] = {MARKER_CREDIT_CODE}
        self.id_numbers: set[str] = set()
        self.phones: set[str] = set()
        self.serials: set[tuple[str, str]] = set()
        self.cert_numbers: set[tuple[CertificateKind, str]] = set()

    # people -------------------------------------------------------------
    def person_name(self, female: bool = False) -> str:
        given = GIVEN_FEMALE if female else GIVEN_MALE
        return self.rng.choice(SURNAMES) + self.rng.choice(given)

    def mobile(self) -> str:
        while True:
            phone = self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if phone not in self.phones:
                self.phones.add(phone)
                return phone

    def landline(self, city: str) -> str:
        if city == "上海市":
            return f"021-{self.rng.choice('56')}{self.rng.randrange(10**7):07d}"
        return f"0371-{self.rng.choice('56')}{self.rng.randrange(10**7):07d}"

    def id_number(self, area: str, female: bool) -> str:
        while True:
            birth = date(self.rng.randint(1962, 2002), 1, 1) + timedelta(
                days=self.rng.randrange(365)
            )
            seq = self.rng.randrange(500) * 2 + (0 if female else 1)
            number = make_id_number(f"{area}{birth:%Y%m%d}{seq:03d}")
            if number not in self.id_numbers:
                self.id_numbers.add(number)
                return number

    # enterprises ----------------------------------------------------------
    def credit_code(self, place: DemoPlace, category: str) -> str:
        area = place.code[:6]
        alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        while True:
            if category in ("医院", "学校"):
                body = f"12{area}{self.rng.randrange(10**9):09d}"  # public institution
            elif category == "养老院":
                body = f"52{area}MJ" + "".join(self.rng.choice(alphabet) for _ in range(7))
            else:
                body = f"91{area}MA" + "".join(self.rng.choice(alphabet) for _ in range(7))
            code = make_credit_code(body)
            if code not in self.credit_codes:
                self.credit_codes.add(code)
                return code

    def enterprise_name(self, place: DemoPlace, category: str) -> tuple[str, str]:
        shanghai = place.city == "上海市"
        brands = (place.brand, *(BRANDS_SH if shanghai else BRANDS_ZZ))
        for _ in range(200):
            road = self.rng.choice(place.roads)
            prefix = self.rng.choice(("上海长宁", "上海") if shanghai else ("郑州", "河南"))
            if category == "施工工地":
                prefix = "上海" if shanghai else "河南"
            brand = self.rng.choice(brands)
            templates = NAME_TEMPLATES[category]
            if shanghai and category == "危化":
                # Downtown Changning has gas suppliers and filling stations, no plants.
                templates = tuple(t for t in templates if "化工" not in t)
            template = self.rng.choice(templates)
            name = template.format(p=prefix, b=brand, r=road.removesuffix("路"))
            if name not in self.names:
                self.names.add(name)
                return name, road
        raise RuntimeError("ran out of demo enterprise names")

    def address(self, place: DemoPlace, road: str) -> str:
        number = self.rng.randint(1, 2200) if place.city == "上海市" else self.rng.randint(1, 360)
        return f"{place.city}{place.district}{road}{number}号"

    def position(self, place: DemoPlace) -> tuple[float, float]:
        lat, lng = CENTRES[place.code]
        spread = 0.006 if place.city == "上海市" else 0.02
        return (
            round(lat + self.rng.uniform(-spread, spread), 6),
            round(lng + self.rng.uniform(-spread, spread), 6),
        )

    # machines -------------------------------------------------------------
    def machine_model(self, category: str) -> MachineModel:
        mix = PROCESS_MIX.get(category, CROWDED_PROCESSES)
        process = self.rng.choice(mix)
        candidates = [m for m in MODELS if m.process == process]
        return self.rng.choice(candidates)

    def serial(self, make: str, since: datetime) -> str:
        while True:
            year = self.rng.randint(since.year - 6, since.year)
            serial = f"{SERIAL_PREFIX[make]}{year}{self.rng.randrange(10**6):06d}"
            if (make, serial) not in self.serials:
                self.serials.add((make, serial))
                return serial

    # certificates ---------------------------------------------------------
    def cert_number(self, kind: CertificateKind, id_number: str, issue: date, region: str) -> str:
        while True:
            if kind is SO:
                number = "T" + id_number
            elif kind is SE:
                number = f"TS-ZJ-{issue.year}-{self.rng.randrange(10**6):06d}"
            else:
                prefix = "沪A04" if region == "310" else "豫A04"
                number = f"{prefix}{issue.year}{self.rng.randrange(10**6):06d}"
            if (kind, number) not in self.cert_numbers:
                self.cert_numbers.add((kind, number))
                return number
            if kind is SO:
                raise RuntimeError("duplicate 特种作业 certificate for one person")

    def certificate_dates(
        self, kind: CertificateKind, target: CertificateStatus
    ) -> tuple[date, date | None]:
        """An issue date (and last review date) that gives ``target`` on today."""
        today, rng = self.today, self.rng
        validity = VALIDITY_YEARS[kind]
        for _ in range(100):
            review: date | None = None
            if target is PENDING:
                issue = today - timedelta(days=rng.randint(0, 3))
            elif target is EXPIRING:
                if kind is SO and rng.random() < 0.6:
                    issue = add_years(today, -3) + timedelta(days=rng.randint(1, 29))
                else:
                    issue = add_years(today, -validity) + timedelta(days=rng.randint(1, 29))
                    if kind is SO:
                        review = add_years(issue, 3) - timedelta(days=rng.randint(5, 50))
            elif target is EXPIRED:
                issue = add_years(today, -validity) - timedelta(days=rng.randint(2, 900))
                if kind is SO and rng.random() < 0.5:
                    review = add_years(issue, 3) - timedelta(days=rng.randint(5, 50))
            elif target is OVERDUE:
                issue = add_years(today, -6) + timedelta(days=rng.randint(40, 3 * 365 - 10))
            elif target is REVOKED:
                issue = today - timedelta(days=rng.randint(60, validity * 365 - 60))
            elif kind is SO and rng.random() < 0.35:
                # Valid after a passed review: issued 3–6 years ago.
                issue = add_years(today, -6) + timedelta(days=rng.randint(45, 3 * 365 - 10))
                review = add_years(issue, 3) - timedelta(days=rng.randint(5, 55))
            else:
                issue = today - timedelta(days=rng.randint(20, validity * 365 - 180))
            if review is not None and review > today:
                continue
            facts = CertificateFacts(
                kind=kind,
                issue_date=issue,
                last_review_date=review,
                revoked=target is REVOKED,
                verified=target is not PENDING,
            )
            if certificate_status(facts, today) is target:
                return issue, review
        raise RuntimeError(f"cannot make a {target} {kind} certificate")


def _region(id_number: str) -> str:
    return id_number[:3] if id_number[:3] in ("310", "410") else "other"


def _spread(total: int, weights: Sequence[float]) -> list[int]:
    whole = sum(weights)
    return [max(1, round(total * w / whole)) for w in weights]


# --------------------------------------------------------------------------
# Seeding
# --------------------------------------------------------------------------


def seed_demo(
    session: Session,
    settings: Settings,
    vault: IdentityVault,
    today: date,
    now: datetime,
    *,
    rng_seed: int = 2026,
) -> DemoSummary:
    """Loads the demo (reference data, register, machines, welders, certificates
    and accounts) unless it is there already. Flushes, never commits."""
    load_reference(session)
    created = EnterpriseRepository(session).by_credit_code(MARKER_CREDIT_CODE) is None
    if created:
        _seed_data(session, vault, today, now, random.Random(rng_seed))
    accounts = _ensure_accounts(session, settings, today)
    if EnterpriseRepository(session).by_credit_code(MARKER_CREDIT_CODE) is not None:
        # The hot-work side (permits, mobile jobs, filings), once per day.
        from weldguard.seed.demo_permits import ensure_permit_accounts, seed_demo_permits

        accounts += ensure_permit_accounts(session, settings)
        seed_demo_permits(session, settings, now)
    session.flush()
    summary = summarize(session, today)
    summary.created = created
    summary.accounts = accounts
    return summary


def _plan_enterprises(gen: _Generator) -> list[_EnterprisePlan]:
    rng = gen.rng
    slots = [place for place in PLACES for _ in range(place.enterprises)]
    categories = list(CATEGORIES)
    weights = [weight for weight, _, _ in CATEGORIES.values()]
    chosen = [rng.choices(categories, weights)[0] for _ in slots]
    # Every category at least once, with hazardous chemicals in Zhengzhou's
    # development zone and aviation near Hongqiao airport.
    fixed = {0: "工贸"}
    by_code = {p.code: i for i, p in enumerate(slots)}  # last slot index of each place
    fixed[by_code["410171"]] = "危化"
    fixed[by_code["410171"] - 1] = "危化"
    fixed[by_code["310105010"]] = "航空航天"
    fixed[by_code["310105102"]] = "施工工地"
    free = [i for i in range(len(slots)) if i not in fixed]
    rng.shuffle(free)
    for category in categories:
        if category not in fixed.values():
            fixed[free.pop()] = category
    for index, category in fixed.items():
        chosen[index] = category

    plans = []
    for index, (place, category) in enumerate(zip(slots, chosen, strict=True)):
        if index == 0:
            name, road = MARKER_NAME, "长宁路"
            gen.names.add(name)
            code = MARKER_CREDIT_CODE
        else:
            name, road = gen.enterprise_name(place, category)
            code = gen.credit_code(place, category)
        _, low, high = CATEGORIES[category]
        machines = rng.randint(low, high)
        if index == 0:
            machines = 14
        status = "在产"
        if index and category not in CROWDED_SUBTYPES:
            status = rng.choices(["在产", "半停产", "停产", "筹建", "歇业"], [86, 6, 4, 2, 2])[0]
        mobile = category == "工贸" and any(
            word in name for word in ("安装", "钢结构", "暖通", "电梯", "幕墙")
        )
        plans.append(
            _EnterprisePlan(
                place=place,
                category=category,
                name=name,
                credit_code=code,
                address=gen.address(place, road),
                legal_rep_name=gen.person_name(female=rng.random() < 0.2),
                legal_rep_phone=gen.mobile(),
                contact_phone=gen.landline(place.city),
                production_status=status,
                mobile_work=mobile or index == 0,
                machines=machines,
                welders=max(1, round(machines * rng.uniform(1.2, 1.9))),
            )
        )
    return plans


def _seed_data(
    session: Session, vault: IdentityVault, today: date, now: datetime, rng: random.Random
) -> None:
    gen = _Generator(rng, today)
    plans = _plan_enterprises(gen)
    # Scale the fleet so that the demo has ≥ 550 machines and ≥ 850 welders.
    machine_total = sum(p.machines for p in plans)
    if machine_total < 580:
        factor = 580 / machine_total
        for plan in plans:
            plan.machines = max(1, round(plan.machines * factor + 0.49))
    welder_total = sum(p.welders for p in plans)
    if welder_total < 900:
        factor = 900 / welder_total
        for plan in plans:
            plan.welders = max(1, round(plan.welders * factor + 0.49))

    _create_enterprises(session, gen, plans)
    _create_machines(session, gen, plans, now)
    _create_welders(session, vault, gen, plans, today)


def _create_enterprises(session: Session, gen: _Generator, plans: list[_EnterprisePlan]) -> None:
    rng = gen.rng
    places = PlaceResolver(session)
    service = EnterpriseService(session)
    for plan in plans:
        sector, subtype = _sector_of(plan.category)
        row: dict[str, object] = {
            "name": plan.name,
            "credit_code": plan.credit_code,
            "sector": sector,
            "city": plan.place.city,
            "district": plan.place.district,
            "street": plan.place.street,
            "address": plan.address,
            "crowded_subtype": subtype or "",
            "legal_rep_name": plan.legal_rep_name,
            "legal_rep_phone": plan.legal_rep_phone,
            "contact_phone": plan.contact_phone,
            "production_status": plan.production_status,
            "involves_welding": "是",
            "mobile_work": "是" if plan.mobile_work else "否",
            # The declared counts of the register seldom match the fleet exactly.
            "declared_machine_count": max(0, plan.machines + rng.choice((0, 0, 0, 1, 2, -1))),
            "declared_welder_count": max(0, plan.welders + rng.choice((0, 0, 1, -1, 3))),
        }
        data, errors = validate_enterprise(row, places)
        if data is None:
            raise ValueError(f"demo enterprise {plan.name} is invalid: {errors}")
        enterprise, _ = service.upsert(_ADMIN_SCOPE, data)
        plan.enterprise = enterprise
        hours = OPENING_HOURS.get(plan.category)
        if hours is not None:
            service.set_opening_hours(_ADMIN_SCOPE, enterprise.id, hours)
        names = list(SITE_NAMES[plan.category])
        rng.shuffle(names)
        for site_name in names[: rng.randint(1, min(3, len(names)))]:
            lat, lng = gen.position(plan.place)
            plan.sites.append(
                service.add_site(
                    _ADMIN_SCOPE,
                    enterprise.id,
                    site_name,
                    address=plan.address,
                    latitude=lat,
                    longitude=lng,
                )
            )


def _create_machines(
    session: Session, gen: _Generator, plans: list[_EnterprisePlan], now: datetime
) -> None:
    rng = gen.rng
    service = MachineService(session)
    device_serial = 100000
    imeis: set[str] = set()

    def next_chip() -> tuple[str, str, str]:
        nonlocal device_serial
        device_serial += rng.randint(1, 37)
        while True:
            imei = "86" + f"{rng.randrange(10**13):013d}"
            if imei not in imeis:
                imeis.add(imei)
                break
        iccid = "8986" + f"{rng.randrange(10**16):016d}"
        return f"WGC{device_serial:06d}", imei, iccid

    for plan in plans:
        assert plan.enterprise is not None
        for _ in range(plan.machines):
            model = gen.machine_model(plan.category)
            registered = now - timedelta(days=rng.randint(200, 1100), minutes=rng.randrange(600))
            site = rng.choice(plan.sites) if plan.sites and rng.random() < 0.85 else None
            machine = service.register(
                _ADMIN_SCOPE,
                MachineInput(
                    serial_number=gen.serial(model.make, registered),
                    make=model.make,
                    model=model.model,
                    process=model.process.value,
                    rated_current_a=model.rated_current_a,
                    enterprise_id=plan.enterprise.id,
                    site_id=site.id if site else None,
                ),
                registered,
            )
            roll = rng.random()
            chipped = roll < 0.76
            if chipped:
                fitted = now - timedelta(days=rng.randint(20, 365), minutes=rng.randrange(600))
                position = gen.position(plan.place)
                if site is not None and site.latitude is not None and site.longitude is not None:
                    position = (site.latitude, site.longitude)
                device_id, imei, iccid = next_chip()
                service.fit_chip(
                    machine,
                    device_id,
                    imei,
                    iccid,
                    rng.choice(INSTALLERS),
                    fitted,
                    position=position,
                )
                if rng.random() < 0.04:
                    # A faulty chip replaced some weeks later: two bindings.
                    replaced = fitted + timedelta(days=rng.randint(7, 19))
                    device_id, imei, iccid = next_chip()
                    service.fit_chip(
                        machine,
                        device_id,
                        imei,
                        iccid,
                        rng.choice(INSTALLERS),
                        replaced,
                        position=position,
                    )
            if rng.random() < 0.025:
                retired = now - timedelta(days=rng.randint(1, 15))
                service.retire(_ADMIN_SCOPE, machine.id, retired)


def _plan_welders(gen: _Generator, plans: list[_EnterprisePlan]) -> list[_WelderPlan]:
    rng = gen.rng
    mobile_employers = [p for p in plans if p.mobile_work]
    welders: list[_WelderPlan] = []
    for plan in plans:
        shanghai = plan.place.city == "上海市"
        for _ in range(plan.welders):
            female = rng.random() < 0.04
            roll = rng.random()
            if shanghai:
                area = rng.choice(AREA_SHANGHAI if roll < 0.35 else AREA_MIGRANT + AREA_HENAN)
            else:
                area = rng.choice(AREA_HENAN if roll < 0.75 else AREA_MIGRANT)
            welders.append(
                _WelderPlan(
                    name=gen.person_name(female),
                    id_number=gen.id_number(area, female),
                    phone=gen.mobile(),
                    home=plan,
                )
            )
    # Mobile welders work for two or three mobile-work contractors of their city.
    candidates = [w for w in welders if w.home.mobile_work]
    rng.shuffle(candidates)
    wanted = max(10, round(len(welders) * MOBILE_WELDER_SHARE))
    for welder in candidates[:wanted]:
        others = [
            p
            for p in mobile_employers
            if p is not welder.home and p.place.city == welder.home.place.city
        ]
        rng.shuffle(others)
        welder.extra_employers = others[: rng.randint(1, 2)]

    # Certificates: which kinds, then which status.
    slots: list[tuple[_WelderPlan, int]] = []
    for index, welder in enumerate(welders):
        if index > 0 and rng.random() < NO_CERTIFICATE_SHARE:
            continue
        category = welder.home.category
        if category == "施工工地":
            kinds = [CO] if rng.random() < 0.55 else [SO]
            if rng.random() < 0.15:
                kinds.append(SO if kinds[0] is CO else CO)
        elif category in ("工贸", "危化", "电力") and rng.random() < 0.14:
            kinds = [SE] if rng.random() < 0.4 else [SO, SE]
        else:
            kinds = [SO]
        if index == 0:
            kinds = [SO]  # the demo welder account's certificate
        for kind in kinds:
            welder.certificates.append((kind, V))
            slots.append((welder, len(welder.certificates) - 1))

    total = len(slots)
    order = list(range(1, total))  # slot 0 stays valid (the welder account)
    rng.shuffle(order)
    for status, share, minimum in STATUS_QUOTAS:
        quota = max(minimum, round(total * share))
        taken = []
        for position in order:
            welder, which = slots[position]
            kind = welder.certificates[which][0]
            if status is OVERDUE and kind is not SO:
                continue
            welder.certificates[which] = (kind, status)
            taken.append(position)
            if len(taken) == quota:
                break
        order = [p for p in order if p not in set(taken)]
    return welders


def _create_welders(
    session: Session,
    vault: IdentityVault,
    gen: _Generator,
    plans: list[_EnterprisePlan],
    today: date,
) -> None:
    rng = gen.rng
    service = WelderService(session, vault)
    for plan in _plan_welders(gen, plans):
        welder = service.register(
            WelderInput(name=plan.name, id_number=plan.id_number, phone=plan.phone), today
        )
        region = _region(plan.id_number)
        employer_region = "310" if plan.home.place.city == "上海市" else "410"
        for kind, status in plan.certificates:
            issue, review = gen.certificate_dates(kind, status)
            if kind is SO:
                authorities = AUTHORITIES[(SO, region)]
            else:
                authorities = AUTHORITIES[(kind, employer_region)]
            number = gen.cert_number(kind, plan.id_number, issue, employer_region)
            validity = VALIDITY_YEARS[kind]
            service.upsert_certificate(
                welder,
                CertificateInput(
                    kind=kind.value,
                    number=number,
                    item=_item(rng, kind, plan.home.category),
                    issue_date=issue,
                    expiry_date=add_years(issue, validity),
                    issuing_authority=rng.choice(authorities),
                    source=SOURCE[kind],
                    last_review_date=review,
                    revoked=status is REVOKED,
                    verified=status is not PENDING,
                ),
                id_number=plan.id_number,
            )
        for employer in (plan.home, *plan.extra_employers):
            assert employer.enterprise is not None
            start = today - timedelta(days=rng.randint(20, 2500))
            service.employ(_ADMIN_SCOPE, welder, employer.enterprise.id, start)


def _item(rng: random.Random, kind: CertificateKind, category: str) -> str:
    if kind is SO:
        if category in ("航空航天", "科研机构") and rng.random() < 0.3:
            return rng.choice(("压力焊作业", "钎焊作业"))
        return rng.choices(kind.items, (90, 5, 5))[0]
    if kind is SE:
        return rng.choices(kind.items, (92, 8))[0]
    return kind.items[0]


# --------------------------------------------------------------------------
# Accounts
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    username: str
    role: Role
    scope: str
    jurisdiction_code: str | None = None
    department: str | None = None
    display_name: str = ""


ACCOUNTS: tuple[_Account, ...] = (
    _Account("admin", Role.ADMIN, "全部数据", display_name="系统管理员"),
    _Account(
        "shanghai",
        Role.REGULATOR,
        "上海市 · 应急管理局（全部行业）",
        "310100",
        "应急",
        "上海市应急管理局",
    ),
    _Account(
        "changning",
        Role.REGULATOR,
        "上海市长宁区 · 应急管理局（全部行业）",
        "310105",
        "应急",
        "长宁区应急管理局",
    ),
    _Account(
        "changning_zj",
        Role.REGULATOR,
        "上海市长宁区 · 住建（仅施工工地）",
        "310105",
        "住建",
        "长宁区建设和管理委员会",
    ),
    _Account(
        "huayang",
        Role.REGULATOR,
        "长宁区华阳路街道 · 应急（全部行业）",
        "310105001",
        "应急",
        "华阳路街道安全办",
    ),
    _Account(
        "xinjing",
        Role.REGULATOR,
        "长宁区新泾镇 · 应急（全部行业）",
        "310105102",
        "应急",
        "新泾镇安全办",
    ),
    _Account(
        "zhengzhou",
        Role.REGULATOR,
        "郑州市 · 应急管理局（全部行业）",
        "410100",
        "应急",
        "郑州市应急管理局",
    ),
    _Account(
        "jinshui",
        Role.REGULATOR,
        "郑州市金水区 · 应急管理局（全部行业）",
        "410105",
        "应急",
        "金水区应急管理局",
    ),
    _Account(
        "inspector_xj",
        Role.INSPECTOR,
        "长宁区新泾镇（检查员）",
        "310105102",
        display_name="新泾镇检查员",
    ),
    _Account(
        "installer",
        Role.INSTALLER,
        "上海市长宁区（加芯安装）",
        "310105",
        display_name="长宁区技术服务队",
    ),
)


def _ensure_accounts(
    session: Session, settings: Settings, today: date
) -> list[tuple[str, str, str]]:
    auth = AuthService(session, settings)
    users = UserRepository(session)
    result: list[tuple[str, str, str]] = []

    def ensure(new: NewUser, scope_text: str) -> None:
        if users.by_username(new.username) is None:
            auth.create_user(new)
        result.append((new.username, Role(new.role).label, scope_text))

    for account in ACCOUNTS:
        ensure(
            NewUser(
                username=account.username,
                password=DEMO_PASSWORD,
                role=account.role.value,
                display_name=account.display_name,
                jurisdiction_code=account.jurisdiction_code,
                department=account.department,
            ),
            account.scope,
        )

    enterprises = EnterpriseRepository(session)
    marker = enterprises.by_credit_code(MARKER_CREDIT_CODE)
    if marker is None:
        return result  # accounts bound to demo records need the demo data
    ensure(
        NewUser(
            "ent_admin",
            DEMO_PASSWORD,
            Role.ENTERPRISE_ADMIN.value,
            display_name="企业管理员",
            enterprise_credit_code=marker.credit_code,
        ),
        marker.name,
    )
    site_company = session.scalars(
        select(Enterprise)
        .where(Enterprise.sector == "施工工地", Enterprise.area_path.like("%/310105102/"))
        .order_by(Enterprise.id)
        .limit(1)
    ).first()
    if site_company is not None:
        ensure(
            NewUser(
                "safety",
                DEMO_PASSWORD,
                Role.SAFETY_OFFICER.value,
                display_name="安全管理员",
                enterprise_credit_code=site_company.credit_code,
            ),
            site_company.name,
        )
    welder = welder_with_valid_certificate(session, marker.id, today)
    if welder is not None:
        ensure(
            NewUser(
                "welder",
                DEMO_PASSWORD,
                Role.WELDER.value,
                display_name=welder.name,
                phone=welder.phone,
                welder_id=welder.id,
            ),
            f"焊工本人：{welder.name}（{welder.phone or '无手机号'}），{marker.name}",
        )
    return result


def welder_with_valid_certificate(
    session: Session, enterprise_id: int, today: date
) -> Welder | None:
    return next(welders_with_valid_certificate(session, enterprise_id, today), None)


def welders_with_valid_certificate(
    session: Session, enterprise_id: int, today: date
) -> Iterator[Welder]:
    """The enterprise's welders with a valid certificate, by id."""
    employed = select(Employment.welder_id).where(Employment.enterprise_id == enterprise_id)
    for welder in session.scalars(
        select(Welder).where(Welder.id.in_(employed)).order_by(Welder.id)
    ):
        certificates = session.scalars(
            select(Certificate).where(Certificate.welder_id == welder.id)
        )
        if any(status_of(c, today) is V for c in certificates):
            yield welder


# --------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------


def summarize(session: Session, today: date) -> DemoSummary:
    """Counts what the database holds (the demo and anything else)."""

    def count(stmt: Select[Any]) -> int:
        return int(session.scalar(stmt) or 0)

    by_status: Counter[str] = Counter(
        status_of(c, today).value for c in session.scalars(select(Certificate))
    )
    certified = select(Certificate.welder_id)
    per_welder = (
        select(Employment.welder_id)
        .where(Employment.end_date.is_(None))
        .group_by(Employment.welder_id)
        .having(func.count(Employment.id) > 1)
        .subquery()
    )
    from weldguard.seed.demo_permits import hot_work_counts

    return DemoSummary(
        created=False,
        hot_work=hot_work_counts(session).line(),
        enterprises=count(select(func.count(Enterprise.id))),
        sites=count(select(func.count(Site.id))),
        machines=count(select(func.count(Machine.id))),
        chipped_machines=count(
            select(func.count(Machine.id)).where(Machine.status == MachineStatus.CHIP_FITTED.value)
        ),
        retired_machines=count(
            select(func.count(Machine.id)).where(Machine.status == MachineStatus.RETIRED.value)
        ),
        chip_bindings=count(select(func.count(ChipBinding.id))),
        welders=count(select(func.count(Welder.id))),
        welders_without_certificate=count(
            select(func.count(Welder.id)).where(Welder.id.not_in(certified))
        ),
        mobile_welders=count(select(func.count()).select_from(per_welder)),
        certificates=sum(by_status.values()),
        certificates_by_status=dict(sorted(by_status.items())),
    )
