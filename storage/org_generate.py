"""Generate a Julu-sized county file, so loading and routing can be measured at real scale.

Julu county: 2,750 basic grids, a grid leader per 10 grids, 11 townships, 63 county
departments. The output is ordinary county YAML (see bot/examples/county.yaml) and loads as is.
"""

from __future__ import annotations

import json
import random
import re

__all__ = ["CATEGORIES", "generate_county"]

# (code, zh, en, deadline_class): the seven Dachang "7621" categories plus emergencies.
CATEGORIES: tuple[tuple[str, str, str, str], ...] = (
    ("safety", "安全隐患", "Safety hazards", "general"),
    ("sanitation", "环境卫生", "Environmental sanitation", "general"),
    ("illegal_construction", "私搭乱建", "Illegal construction", "general"),
    ("dispute", "矛盾纠纷", "Neighbour disputes", "general"),
    ("livelihood", "民生诉求", "Livelihood appeals", "livelihood"),
    ("piling", "乱堆乱放", "Random piling", "general"),
    ("public_security", "治安稳定", "Public security", "general"),
    ("emergency", "疫情及突发", "Epidemic and emergencies", "emergency"),
)

# (code, zh, en, categories it owns); real county departments, in a plausible routing order.
_DEPARTMENTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("municipal", "城市管理局", "Urban Management Bureau", ("sanitation", "piling")),
    (
        "housing",
        "住房和城乡建设局",
        "Housing and Urban-Rural Development Bureau",
        ("safety", "illegal_construction"),
    ),
    ("water", "水利局", "Water Resources Bureau", ("safety",)),
    ("environment", "生态环境分局", "Ecology and Environment Branch", ("sanitation",)),
    ("public_security", "公安局", "Public Security Bureau", ("public_security", "dispute")),
    ("market", "市场监督管理局", "Market Supervision Bureau", ("safety", "livelihood")),
    ("health", "卫生健康局", "Health Commission", ("emergency",)),
    ("civil_affairs", "民政局", "Civil Affairs Bureau", ("livelihood",)),
    ("justice", "司法局", "Justice Bureau", ("dispute",)),
    ("emergency_mgmt", "应急管理局", "Emergency Management Bureau", ("emergency", "safety")),
    ("transport", "交通运输局", "Transport Bureau", ("safety", "piling")),
    (
        "natural_resources",
        "自然资源和规划局",
        "Natural Resources and Planning Bureau",
        ("illegal_construction",),
    ),
    ("agriculture", "农业农村局", "Agriculture and Rural Affairs Bureau", ("livelihood",)),
    ("education", "教育局", "Education Bureau", ("livelihood",)),
    (
        "hrss",
        "人力资源和社会保障局",
        "Human Resources and Social Security Bureau",
        ("livelihood", "dispute"),
    ),
    ("petition", "信访局", "Letters and Calls Bureau", ("dispute",)),
    ("fire", "消防救援大队", "Fire and Rescue Brigade", ("emergency",)),
    ("power", "供电公司", "Power Supply Company", ("livelihood",)),
    ("veterans", "退役军人事务局", "Veterans Affairs Bureau", ("livelihood",)),
    ("forestry", "林业局", "Forestry Bureau", ()),
)

# (zh, en, kind); the towns and townships of Julu, with its county seat as streets.
_TOWNSHIPS: tuple[tuple[str, str, str], ...] = (
    ("城关街道", "Chengguan Subdistrict", "street"),
    ("巨鹿镇", "Julu Town", "township"),
    ("王虎寨镇", "Wanghuzhai Town", "township"),
    ("西郭城镇", "Xiguocheng Town", "township"),
    ("官亭镇", "Guanting Town", "township"),
    ("阎疃镇", "Yantuan Town", "township"),
    ("小吕寨镇", "Xiaolüzhai Town", "township"),
    ("苏家营镇", "Sujiaying Town", "township"),
    ("开发区街道", "Development Zone Subdistrict", "street"),
    ("堤村乡", "Dicun Township", "township"),
    ("张王疃乡", "Zhangwangtuan Township", "township"),
)

_PREFIXES: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("东", "Dong"),
    ("西", "Xi"),
    ("南", "Nan"),
    ("北", "Bei"),
    ("前", "Qian"),
    ("后", "Hou"),
    ("大", "Da"),
    ("小", "Xiao"),
)
_SURNAMES = (
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("赵", "zhao"),
    ("孙", "sun"),
    ("郭", "guo"),
    ("马", "ma"),
    ("高", "gao"),
    ("邢", "xing"),
)
_VILLAGE_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("家庄", "jiazhuang"),
    ("庄", "zhuang"),
    ("营", "ying"),
    ("寨", "zhai"),
    ("屯", "tun"),
    ("疃", "tuan"),
    ("村", "cun"),
)
_PERSON_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志红梅玉兵辉鹏飞春燕文斌"
_NUMERALS = "一二三四五六七八九十"

# Plain YAML scalars that stay text in flow style; anything else is written double-quoted.
_PLAIN = re.compile(r"[A-Za-z\u4e00-\u9fff][\w\u4e00-\u9fff .'()/-]*")
_RESERVED = frozenset({"yes", "no", "on", "off", "true", "false", "null", "y", "n"})


def _q(value: str) -> str:
    if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED and not value.endswith(" "):
        return value
    return json.dumps(value, ensure_ascii=False)


def _name(zh: str, en: str) -> str:
    return f"{{zh_CN: {_q(zh)}, en: {_q(en)}}}"


def _grid_name(n: int) -> str:
    if n <= 10:
        return f"第{_NUMERALS[n - 1]}网格"
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else _NUMERALS[tens - 1]
    return f"第{head}十{_NUMERALS[ones - 1] if ones else ''}网格"


def _split(total: int, parts: int, rng: random.Random, jitter: int) -> list[int]:
    """total split into parts near total/parts each, none below 1 (when total allows)."""
    base, extra = divmod(total, parts)
    sizes = [base + (1 if i < extra else 0) for i in range(parts)]
    # Move a few units between random pairs so villages differ, keeping the total exact.
    for _ in range(parts * 2):
        a, b = rng.randrange(parts), rng.randrange(parts)
        step = rng.randint(0, jitter)
        if a != b and sizes[a] - step >= max(1, base - jitter):
            sizes[a] -= step
            sizes[b] += step
    return sizes


def generate_county(
    townships: int = 11, grids: int = 2750, departments: int = 63, seed: int = 0
) -> str:
    """A county file of the given size; the same arguments always give the same text."""
    if townships < 1 or grids < townships or departments < 1:
        raise ValueError("need at least one township, one grid per township and one department")
    rng = random.Random(seed)
    out: list[str] = [
        f"# Generated by shuoshi org generate (townships={townships}, grids={grids}, "
        f"departments={departments}, seed={seed}).",
        "county:",
        "  code: JL",
        f"  name: {_name('巨鹿县', 'Julu County')}",
        "  children:",
    ]

    villages_total = max(townships, round(grids / 10))
    villages_per_township = _split(villages_total, townships, rng, 2)
    grids_per_village = _split(grids, villages_total, rng, 3)
    # township code -> its grid codes, for leaders and operators below
    township_grids: list[tuple[str, list[str]]] = []
    used_village_names: set[str] = set()
    village_index = 0
    for t in range(townships):
        if t < len(_TOWNSHIPS):
            t_zh, t_en, t_kind = _TOWNSHIPS[t]
        else:
            t_zh, t_en, t_kind = f"第{t + 1}乡", f"Township {t + 1}", "township"
        t_code = f"JL-T{t + 1:02d}"
        out += [
            f"    - code: {t_code}",
            f"      kind: {t_kind}",
            f"      name: {_name(t_zh, t_en)}",
            "      children:",
        ]
        grid_codes: list[str] = []
        for v in range(villages_per_township[t]):
            v_code = f"{t_code}-V{v + 1:03d}"
            community = t_kind == "street" or rng.random() < 0.1
            while True:
                pre_zh, pre_en = rng.choice(_PREFIXES)
                sur_zh, sur_en = rng.choice(_SURNAMES)
                suf_zh, suf_en = rng.choice(_VILLAGE_SUFFIXES)
                base_zh = f"{pre_zh}{sur_zh}{suf_zh}"
                base_en = f"{pre_en}{sur_en}{suf_en}".capitalize()
                if base_zh not in used_village_names or len(used_village_names) > 500:
                    break
            used_village_names.add(base_zh)
            if community:
                v_zh, v_en, v_kind = f"{base_zh}社区", f"{base_en} Community", "community"
            else:
                suffix = "" if base_zh.endswith("村") else "村"
                v_zh, v_en, v_kind = f"{base_zh}{suffix}", f"{base_en} Village", "village"
            out += [
                f"        - code: {v_code}",
                f"          kind: {v_kind}",
                f"          name: {_name(v_zh, v_en)}",
                "          children:",
            ]
            for g in range(grids_per_village[village_index]):
                g_code = f"{v_code}-G{g + 1:02d}"
                grid_codes.append(g_code)
                g_name = _name(f"{v_zh}{_grid_name(g + 1)}", f"{v_en} Grid {g + 1}")
                out.append(f"            - {{code: {g_code}, kind: grid, name: {g_name}}}")
            village_index += 1
        township_grids.append((t_code, grid_codes))

    out.append("categories:")
    for code, zh, en, deadline_class in CATEGORIES:
        out.append(f"  - {{code: {code}, name: {_name(zh, en)}, deadline_class: {deadline_class}}}")

    dept_rows: list[tuple[str, str, str, list[str]]] = []
    for d in range(departments):
        if d < len(_DEPARTMENTS):
            code, zh, en, primary = _DEPARTMENTS[d]
            dept_rows.append((code, zh, en, list(primary)))
        else:
            # Generated departments back up one or two categories as secondary owners.
            picks = rng.sample([c[0] for c in CATEGORIES], rng.randint(0, 2))
            dept_rows.append(
                (f"dept{d + 1:02d}", f"县直部门{d + 1}", f"County Department {d + 1}", picks)
            )
    owned_somewhere = {c for row in dept_rows for c in row[3]}
    for i, (code, *_rest) in enumerate(CATEGORIES):
        if code not in owned_somewhere:
            dept_rows[i % len(dept_rows)][3].append(code)
    out.append("departments:")
    for code, zh, en, owned_codes in dept_rows:
        out += [
            f"  - code: {code}",
            f"    name: {_name(zh, en)}",
            f"    categories: [{', '.join(owned_codes)}]",
        ]

    out.append("people:")
    counter = 0

    def person(prefix: str, roles: str) -> None:
        nonlocal counter
        counter += 1
        name = rng.choice(_PERSON_SURNAMES) + "".join(rng.sample(_GIVEN, rng.randint(1, 2)))
        # One in fifty prefers English, so both languages are exercised at scale.
        language = ", language: en" if rng.random() < 0.02 else ""
        out.append(
            f'  - {{code: P-{prefix}-{counter:05d}, name: {name}, phone: "139{counter:08d}"'
            f"{language}, roles: [{roles}]}}"
        )

    for _t_code, grid_codes in township_grids:
        for g_code in grid_codes:
            person("W", f"{{role: grid_worker, areas: [{g_code}]}}")
    for _t_code, grid_codes in township_grids:
        for start in range(0, len(grid_codes), 10):
            person(
                "L", f"{{role: grid_leader, areas: [{', '.join(grid_codes[start : start + 10])}]}}"
            )
    for t_code, _grids in township_grids:
        for _ in range(2):
            person("T", f"{{role: township_operator, areas: [{t_code}]}}")
    for _ in range(3):
        person("C", "{role: county_dispatcher}")
    for dept_code, _zh, _en, _cats in dept_rows:
        for _ in range(2):
            person("H", f"{{role: department_handler, department: {dept_code}}}")
    for _ in range(3):
        person("S", "{role: supervisor}")
    person("A", "{role: admin}")
    all_grids = [g for _t, codes in township_grids for g in codes]
    for g_code in rng.sample(all_grids, min(20, len(all_grids))):
        person("R", f"{{role: resident, areas: [{g_code}]}}")
    return "\n".join(out) + "\n"
