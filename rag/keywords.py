"""Chinese keyword tokens for BM25 and for matching questions to sentences."""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

import jieba

jieba.setLogLevel(logging.WARNING)

# Domain terms jieba would otherwise cut apart (and place names the router uses).
DOMAIN_TERMS = [
    "集成电路", "半导体", "苏州工业园区", "青浦区", "湖里区", "工信部", "十二五", "十一五", "十四五",
    "专精特新", "第三代半导体", "化合物半导体", "宽禁带半导体", "封装测试", "封测", "芯片设计",
    "晶圆制造", "产业集群", "高层次人才", "科技领军人才", "营收", "主营业务收入", "销售收入",
    "公共服务平台", "产业园", "上市企业", "国家级", "EDA", "MEMS", "IDM", "学习工厂",
    "先进制造贷", "现代服务贷", "西岑科创中心", "青浦工业园区", "西虹桥商务区", "市西软件信息园",
    "两岸集成电路产业园", "芯火", "双创基地", "扶持资金", "责任单位", "保障措施",
]
for term in DOMAIN_TERMS:
    jieba.add_word(term, freq=200000)

# Companies and institutions (named in the plans, or often asked about) tagged as
# organisations, so a question naming one the cited clauses never mention is refused.
ORGANIZATIONS = [
    "中芯国际", "海思半导体", "华为海思", "长电科技", "英特尔", "三星", "德州仪器", "台积电", "华为", "和舰芯片",
    "矽品", "晶方", "华兴源创", "南大光电", "园芯微", "晶湛", "纳维", "敏芯", "纳芯", "思瑞浦", "创耀", "东微",
    "赛芯", "通富超威", "日月新", "嘉盛", "瑞晟", "旺宏", "京隆科技", "长瑞", "科阳", "芯一代", "亿芯源", "利亚德",
    "国芯科技", "伟岸纵横", "集创北方", "瑞芯微", "苏州国芯", "国民技术", "光飞扬", "矩意", "精测", "慧石",
    "东芯半导体", "华虹", "长江存储", "长鑫存储", "紫光", "海光", "寒武纪", "英伟达", "高通", "联发科",
    "北方华创", "中微公司", "华侨大学", "厦门大学", "集美大学", "哈工大", "姑苏实验室", "材料科学姑苏实验室",
]
for org in ORGANIZATIONS:
    jieba.add_word(org, freq=200000, tag="nt")

# Cities jieba sometimes tags as common nouns: a question about one the plans never
# mention must be recognised as naming a place.
CITIES = ("北京 天津 重庆 广州 杭州 南京 武汉 成都 西安 合肥 无锡 长沙 郑州 济南 青岛 大连 宁波 福州 沈阳 长春 "
          "哈尔滨 石家庄 太原 南昌 昆明 贵阳 南宁 海口 兰州 西宁 银川 乌鲁木齐 呼和浩特 拉萨 珠海 东莞 佛山 绍兴 "
          "常州 南通 嘉兴 泉州 烟台 徐州 温州 台州 绵阳 芜湖 滁州 淮安 盐城 扬州 镇江").split()
for city in CITIES:
    jieba.add_word(city, freq=200000, tag="ns")

# Words that carry no content in a question or a clause.
STOPWORDS = set("""
的 了 和 与 及 或 是 在 到 对 为 以 等 有 中 上 下 把 被 将 从 由 其 该 这 那 之 于 并 而 也 都 就 又 及其
什么 多少 哪些 哪个 哪里 怎么 怎样 如何 是否 有没有 有何 为何 为什么 几 几个 多大 请问 吗 呢 吧 啊
一个 一些 一批 提出 提到 规定 要求 方面 相关 有关 进行 开展 加强 推动 推进 支持 实现 达到 进一步
目前 哪 谁 请 说 讲 介绍 一下 分别 各自 主要 具体 内容 文件 规划 计划 方案 行动 行动计划 里 中的
不同 区别 差异 相比 比较 对比 异同 有何不同 有什么 一样 相同 两地 各
部署 做法 做了 采取 有何 怎么样 现在 目前 当前 现有 如今 对比 一下 哪几 哪几个 几条 分别 一共 总共 对此 提及 提到了 说 表述
what which how many much is are the of to in for and by on a an does do did plan plans about
""".split())
_PUNCT = re.compile(r"^[\W_]+$", re.UNICODE)


@lru_cache(maxsize=16384)
def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


@lru_cache(maxsize=4096)
def _cut(text: str) -> tuple[str, ...]:
    return tuple(jieba.cut_for_search(text))


@lru_cache(maxsize=4096)
def _cut_precise(text: str) -> tuple[str, ...]:
    return tuple(jieba.cut(text))


def segment(text: str) -> tuple[str, ...]:
    """Precise-mode words of `text` (with the domain dictionary), punctuation included."""
    return _cut_precise(text)


def key_terms(text: str) -> list[str]:
    """The question's content words, cut in precise mode: no overlapping pieces
    ("集成电路", not also "集成"/"成电"/"电路"), no single characters, no stopwords."""
    out = []
    for tok in _cut_precise(normalize(text)):
        tok = tok.strip()
        if len(tok) >= 3 and tok[0] == "年":
            tok = tok[1:]  # "2023年产值" cuts as 2023 / 年产值: the plans say 产值
        if len(tok) < 2 or tok in STOPWORDS or _PUNCT.match(tok):
            continue
        if tok not in out:
            out.append(tok)
    return out


def tokens(text: str) -> list[str]:
    """Search tokens: NFKC-normalized, lower-cased, no punctuation or stopwords."""
    out = []
    for tok in _cut(normalize(text)):
        tok = tok.strip()
        if not tok or tok in STOPWORDS or _PUNCT.match(tok):
            continue
        out.append(tok)
    return out


# Words the plans use interchangeably; a question using one should match clauses using another.
SYNONYM_GROUPS = [
    {"营收", "营业收入", "销售收入", "主营业务收入", "收入"},
    {"营收", "产业规模", "产值", "规模"},
    {"人才", "人才总量", "高层次人才", "领军人才", "人才队伍"},
    {"封测", "封装测试", "封装", "测试"},
    {"扶持", "支持", "补贴", "资助", "奖励", "扶持资金"},
    {"上市", "上市企业", "上市公司"},
    {"产业园", "产业园区", "园区"},
    {"研发", "研究开发", "研发投入"},
    {"专利", "发明专利", "知识产权"},
    {"平台", "公共服务平台", "服务平台"},
    {"基金", "产业基金", "投资基金"},
    {"第三代半导体", "化合物半导体", "宽禁带半导体", "氮化镓", "碳化硅"},
    {"招商", "招商引资", "引进"},
    {"目标", "到2025年"},
    {"目标", "希望", "力争", "计划"},
    {"问题", "短板", "不足", "差距"},
    {"高校", "大学", "院校"},
    {"产业集群", "集群"},
]
_VARIANTS: dict[str, frozenset[str]] = {}
for _group in SYNONYM_GROUPS:
    for _word in _group:
        _VARIANTS[_word] = _VARIANTS.get(_word, frozenset()) | frozenset(_group)


def variants(token: str) -> frozenset[str]:
    """The token and the words the plans use for the same thing."""
    return _VARIANTS.get(token, frozenset((token,)))


# English words of a question -> the Chinese terms the plans use, so that English
# questions can be matched to sentences of the Chinese text.
GLOSSARY = {
    "revenue": ["营收", "收入"], "sales": ["销售收入", "销售"], "output value": ["产值"], "output": ["产值", "产量"],
    "industry scale": ["产业规模"], "scale": ["规模"], "size": ["规模"], "market share": ["份额"], "share": ["份额", "占比"],
    "market": ["市场"], "target": ["目标"], "goal": ["目标"], "talent": ["人才"], "talents": ["人才"],
    "high-level": ["高层次"], "leading": ["领军", "龙头"], "companies": ["企业"], "company": ["企业"],
    "enterprises": ["企业"], "firms": ["企业"], "listed": ["上市"], "design": ["设计"], "manufacturing": ["制造"],
    "packaging": ["封装", "封测"], "testing": ["测试", "封测"], "equipment": ["设备", "装备"], "materials": ["材料"],
    "investment": ["投资"], "invest": ["投资"], "fund": ["基金", "资金"], "funds": ["基金", "资金"],
    "subsidy": ["扶持资金", "补贴"], "subsidies": ["扶持资金", "补贴"], "support": ["支持", "扶持"],
    "district": ["区"], "districts": ["区"], "park": ["产业园", "园区"], "parks": ["产业园", "园区"],
    "platform": ["平台"], "platforms": ["平台"], "patent": ["专利"], "patents": ["专利"], "r&d": ["研发"],
    "research": ["研发", "研究"], "staff": ["人才", "人员"], "employees": ["人才", "人员"], "people": ["人"],
    "cluster": ["集群"], "learning factories": ["学习工厂"], "learning factory": ["学习工厂"],
    "scenario": ["场景"], "scenarios": ["场景"], "wafer": ["晶圆"], "foundry": ["晶圆代工", "代工"],
    "third-generation": ["第三代半导体"], "compound": ["化合物"], "eda": ["EDA"], "mems": ["MEMS"],
    "growth": ["增长"], "annual": ["年均"], "specialized": ["专精特新"], "little giant": ["小巨人"],
    "high-tech": ["高新技术"], "universities": ["高校", "院校", "大学"], "university": ["高校", "大学"],
    "training": ["培训", "实训"], "land": ["用地", "土地"], "space": ["空间"], "layout": ["布局"],
    "positioned": ["定位"], "position": ["定位"], "responsible": ["负责", "责任单位"], "tax": ["税收", "税"],
    "finance": ["金融"], "financing": ["融资"], "loan": ["贷"], "loans": ["贷"], "proposal": ["提案"],
    "contact": ["联系人", "联系电话"], "phone": ["联系电话"], "measures": ["措施"], "problems": ["问题"],
    "chips": ["芯片"], "chip": ["芯片"], "process": ["工艺"], "nanometer": ["纳米"], "nm": ["纳米"],
    "inch": ["英寸"], "environmental": ["环保"], "projects": ["项目"], "project": ["项目"], "center": ["中心"],
    "centre": ["中心"], "huawei": ["华为"], "headquarters": ["总部"], "income": ["收入"], "number": ["数量"],
}


def english_terms(question: str) -> list[str]:
    """Chinese terms for the English words and phrases of `question`, longest phrases first."""
    q = " " + re.sub(r"[^a-z0-9&\- ]+", " ", question.lower()) + " "
    out: list[str] = []
    for phrase in sorted(GLOSSARY, key=len, reverse=True):
        if f" {phrase} " in q:
            q = q.replace(f" {phrase} ", " ")
            out += [t for t in GLOSSARY[phrase] if t not in out]
    return out
