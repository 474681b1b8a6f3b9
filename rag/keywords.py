"""Chinese keyword tokens for BM25 and for matching questions to sentences.

No names from any document live here: the documents' own names (places,
organisations, aliases) are taught to jieba by `rag.vocabulary.register` when
a corpus is loaded or a document uploaded.  What stays is language: stopwords,
general policy synonyms, an English glossary.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache

import jieba

from .config import jieba_cache_dir

jieba.setLogLevel(logging.WARNING)
# jieba's prefix dictionary, cached once (marshal) where we can write: loading the cache takes ~0.5 s,
# rebuilding it from dict.txt ~2 s.  Without a writable cache dir jieba uses the system temp dir.
jieba.dt.tmp_dir = jieba_cache_dir()

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


# Parts of speech (jieba) of words that carry no topic: particles (的话), conjunctions (如果),
# prepositions (把), pronouns (自己, 每年), localisers (以后), adverbs (已经), modal particles.
_FUNCTION_POS = ("u", "c", "p", "y", "e", "o", "r", "f", "d")


@lru_cache(maxsize=4096)
def pos_cut(text: str) -> tuple[tuple[str, str], ...]:
    """jieba's words of `text` with their parts of speech.  Cached: a question's words are tagged
    by several steps of the answer (names, measured words, function words), and tagging is the
    slowest of them; `dictionary_changed` clears it when new names are taught to jieba."""
    import jieba.posseg as pseg

    return tuple((w.word, w.flag) for w in pseg.cut(text))


def dictionary_changed() -> None:
    """jieba learned new words (an indexed document's names): cached cuts may now differ."""
    for cached in (_cut, _cut_precise, pos_cut, _function_words, is_verbal):
        cached.cache_clear()


@lru_cache(maxsize=4096)
def _function_words(text: str) -> frozenset[str]:
    # "eng" (a Latin word: EDA, GPU) is no interjection ("e"): it is often the very topic asked about
    return frozenset(word for word, flag in pos_cut(text)
                     if flag.startswith(_FUNCTION_POS) and flag != "eng" and len(word) >= 2)


@lru_cache(maxsize=4096)
def is_verbal(word: str) -> bool:
    """A word that says what is done (借给, 会扣, 罚), not a thing (光刻机, 安家补贴): every piece
    jieba cuts it into is a verb (not a verbal noun) or a function word."""
    flags = [flag for _, flag in pos_cut(word)]
    return bool(flags) and any(f.startswith("v") and f != "vn" for f in flags) and all(
        (f.startswith("v") and f != "vn") or f.startswith(_FUNCTION_POS) for f in flags)


def segment(text: str) -> tuple[str, ...]:
    """Precise-mode words of `text` (with the domain dictionary), punctuation included."""
    return _cut_precise(text)


def key_terms(text: str) -> list[str]:
    """The question's content words, cut in precise mode: no overlapping pieces
    ("集成电路", not also "集成"/"成电"/"电路"), no single characters, no stopwords."""
    out = []
    function_words = _function_words(normalize(text))
    for tok in _cut_precise(normalize(text)):
        tok = tok.strip()
        if tok in function_words:
            continue
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
    {"扶持", "支持", "补贴", "资助", "奖励", "扶持资金", "奖补"},
    {"上市", "上市企业", "上市公司"},
    {"产业园", "产业园区", "园区"},
    {"研发", "研究开发", "研发投入"},
    {"专利", "发明专利", "知识产权"},
    {"平台", "公共服务平台", "服务平台"},
    {"基金", "产业基金", "投资基金"},
    {"招商", "招商引资", "引进"},
    {"目标", "到2025年"},
    {"目标", "希望", "力争", "计划"},
    {"问题", "短板", "不足", "差距"},
    {"高校", "大学", "院校"},
    {"产业集群", "集群"},
    # everyday paraphrases of what rules and measures say (askers rarely use the text's word)
    {"企业", "公司", "厂商"},
    {"最高", "封顶", "上限", "不超过", "最多"},
    {"补贴", "补差", "奖补"},
    {"扣分", "减分", "会扣", "少加"},
    {"罚款", "罚", "处罚", "罚多少"},
    {"有效期", "期限", "时限"},
    {"给钱", "拿钱", "发钱", "补助", "补贴", "资助", "奖励", "资金", "财政补助"},
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
    "cluster": ["集群"],
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
    "centre": ["中心"], "headquarters": ["总部"], "income": ["收入"], "number": ["数量"],
    # general policy vocabulary: enterprises, money, conditions, people, administration
    "sme": ["中小企业"], "smes": ["中小企业"], "small and medium": ["中小企业"], "enterprise": ["企业"],
    "enterprise-level": ["企业级"], "industrial": ["工业", "产业"], "internet": ["互联网"], "digital": ["数字化", "数字"],
    "digitalization": ["数字化"], "transformation": ["转型", "改造"], "intelligent": ["智能"], "smart": ["智能", "智慧"],
    "factory": ["工厂"], "factories": ["工厂"], "workshop": ["车间"], "workshops": ["车间"], "tech": ["科技", "技术"],
    "technology": ["技术", "科技"], "technical": ["技术"], "innovation": ["创新"], "startup": ["创业", "初创"],
    "startups": ["创业", "初创"], "entrepreneurship": ["创业"], "reward": ["奖励"], "rewards": ["奖励"],
    "award": ["奖励"], "awards": ["奖励"], "grant": ["资助", "补助"], "grants": ["资助", "补助"], "bonus": ["奖励"],
    "interest": ["贴息", "利息"], "discount": ["贴息"], "cap": ["最高"], "maximum": ["最高"], "max": ["最高"],
    "at most": ["最高", "不超过"], "minimum": ["不低于", "至少"], "at least": ["不低于", "以上"], "ratio": ["比例"],
    "proportion": ["比例", "占比"], "percentage": ["比例", "%"], "rate": ["率", "比例"], "amount": ["金额"],
    "investment fund": ["投资基金"], "guarantee": ["担保"], "credit": ["信贷", "信用"], "insurance": ["保险"],
    "equity": ["股权"], "shares": ["股份", "股权"], "voting": ["表决权"], "listing": ["上市", "挂牌"],
    "professionals": ["人才", "专业技术人员"], "managers": ["管理人员"], "experts": ["专家"], "youth": ["青年"],
    "graduates": ["毕业生"], "train": ["培训", "培养"], "trained": ["培训", "培养"], "cultivate": ["培育", "培养"],
    "housing": ["住房"], "rent": ["租金", "租赁"], "office": ["办公"], "land area": ["用地", "亩"],
    "area": ["面积", "用地"], "total investment": ["总投资"], "productivity": ["生产效率", "效率"],
    "efficiency": ["效率"], "adoption": ["普及", "应用"], "application": ["应用", "申请", "申报"],
    "apply": ["申请", "申报"], "applications": ["申请", "申报"], "conditions": ["条件"], "eligible": ["符合条件"],
    "requirements": ["要求", "条件"], "deadline": ["期限", "日内"], "days": ["日", "天"], "working days": ["工作日"],
    "registration": ["登记", "注册"], "register": ["登记", "注册"], "license": ["许可", "执照"], "fine": ["罚款"],
    "fines": ["罚款"], "penalty": ["罚款", "处罚"], "penalties": ["罚款", "处罚"], "liability": ["责任"],
    "department": ["部门"], "departments": ["部门"], "authority": ["主管部门"], "agency": ["部门", "机构"],
    "leads": ["牵头"], "lead": ["牵头", "龙头"], "task force": ["专班", "工作组"], "working group": ["工作组", "专班"],
    "safeguard": ["保障"], "safeguards": ["保障"], "guarantee measures": ["保障措施"], "principles": ["原则"],
    "tasks": ["任务"], "key tasks": ["重点任务"], "goals": ["目标"], "targets": ["目标"], "world": ["全球", "世界"],
    "global": ["全球"], "international": ["国际"], "domestic": ["国内"], "share of": ["份额", "占"],
    "spatial": ["布局", "空间"], "distributed": ["布局", "分布"], "focus": ["重点", "聚焦"], "priority": ["重点"],
    "segments": ["产业", "环节"], "chain": ["产业链"], "supply chain": ["供应链"], "nodes": ["节点"],
    "node": ["节点"], "identifier": ["标识"], "data": ["数据"], "security": ["安全"], "cases": ["案例"],
    "demonstration": ["示范"], "pilot": ["试点"], "evaluation": ["考评", "评价", "评估"], "assessment": ["考核", "评估"],
    "points": ["分"], "score": ["分"], "agricultural": ["农业"], "machinery": ["机械", "装备"],
    "mechanization": ["机械化"], "artificial intelligence": ["人工智能"], "ai": ["人工智能"],
    "government": ["政府"], "services": ["服务"], "service": ["服务"], "hotline": ["热线"],
    "technology transfer": ["成果转化"], "achievements": ["成果"], "commercialization": ["转化", "产业化"],
    "hong kong": ["港澳"], "macao": ["港澳"], "macau": ["港澳"], "young people": ["青年"],
}


def english_terms(question: str, index=None) -> list[str]:
    """Chinese terms for the English words and phrases of `question`, longest phrases first:
    the glossary's, then (given the index, whose `vocabulary` is its documents' words) the
    dictionary's for the words the glossary lacks (`rag.english`)."""
    q = " " + re.sub(r"[^a-z0-9&\- ]+", " ", question.lower()) + " "
    out: list[str] = []
    if re.search(r"[\u3400-\u9fff]", question):  # a Chinese question's Latin words are names (EDA, IDM)
        index = None
    covered: set[str] = set()
    for phrase in sorted(GLOSSARY, key=len, reverse=True):
        if f" {phrase} " in q:
            q = q.replace(f" {phrase} ", " | ")
            covered.update(phrase.split())
            out += [t for t in GLOSSARY[phrase] if t not in out]
    if index is not None:
        from .english import translate

        out += [t for t in translate(question, index.vocabulary, covered) if t not in out]
    return out
