"""Complaint topics and urgency flags.

Topics are the union of curated phrase lists and, when the sentiment model
carries one, a trained topic head (``topic_head.py``) over the same forward
pass. Phrase lists are transparent and easy for a team to extend; the head
catches paraphrases they miss. The head covers only the topics its training
data has (see ``models/train_topics.py``); the rest stay phrase-list only.
Precision/recall of each: ``docs/topics.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# The value, not the module: importing topic_head here would pull torch into every CLI start.
DECISION_SCORE = 0.5  # must equal topic_head.DECISION_SCORE (a test checks)

TOPICS = (
    "wait_time",
    "staff_attitude",
    "staff_knowledge",
    "not_resolved",
    "product_quality",
    "price_billing",
    "cleanliness_ambience",
    "delivery_logistics",
    "app_website",
    "other",
)
URGENCY_FLAGS = ("safety_health", "legal_threat", "churn_threat", "high_reach", "question")
HIGH_REACH = 10_000

# English patterns are matched case-insensitively on word boundaries; Chinese ones on the characters.
# A bare mention of a price or a person ("the bill", "our server") is left out on purpose: complaints about
# the food name the bill and the waiter too, and would be routed to the wrong person. Mentions of a channel
# (the app, a delivery) stay in English: a complaint that names one is nearly always about it.
# Precision and recall on held-out review sentences: docs/topics.md; airline and Chinese checks:
# tests/test_topic_signals.py.
_TOPIC_PATTERNS: dict[str, list[str]] = {
    "wait_time": [
        # "wait", not "can't wait", "wait staff" or "worth the wait" (praise of the food).
        r"(?<!can't )(?<!cant )(?<!cannot )(?<!can not )(?<!couldn't )(?<!worth the )\bwait(ed|ing|s)?\b"
        r"(?!\s*(staff|person|people|ress|er)\b)(?! on (us|me|you|them)\b)",
        r"\b(took|takes|taking|take) (forever|ages|so long|too long|an hour|hours|\d+\s*(min|minutes|hours?))",
        r"\bslow(est|ly|er)?\b",
        r"\bforever\b",
        r"\b\d+\s*(min(ute)?s?|hours?|hrs?)\b.*\b(wait|line|queue|late|hold|delay)",
        r"\b(long|huge|massive|ridiculous|endless) (line|queue|wait|delay)s?\b",
        r"排队",
        r"排了",
        r"(等|排|晚|迟)了?.{0,4}(\d+|[一二两三四五六七八九十半几]+)个?多?(小时|分钟|钟头)",
        r"等了",
        r"等位",
        r"等(太|很|好|这么|那么)?久",
        r"久等",
        r"半天",
        r"太慢",
        r"(很|好|特别|非常|超级?|真)慢",
        r"慢死",
        r"上菜慢|上菜(太|很|超|特别)?慢",
        r"(送|配送|送餐|出餐)(得|的)?(太|很|超|特别)?慢",
        r"迟迟",
        r"延误",
        r"晚点",
    ],
    "staff_attitude": [
        r"\brude(ly|ness)?\b",
        r"\bimpolite\b",
        r"\b(attitude|unfriendly|dismissive|condescending|ignored (us|me)|yelled|snapped|arrogant|snobby|snotty)\b",
        r"\b(obnoxious|hostile|disrespectful|unprofessional|unhelpful|inattentive|indifferent|pushy|surly)\b",
        r"\b(barista|waiter|waitress|staff|server|cashier|manager|host|hostess|bartender|employee|agent|rep"
        r"|representative|crew|flight attendant|attendant|pilot|driver|clerk)s?\b.*"
        r"\b(rude|mean|unhelpful|roll(ed)? (her|his|their) eyes|nasty|horrible|terrible|awful|useless|lazy)",
        r"\b(poor|bad|terrible|horrible|awful|lousy|worst|rude|mediocre|inattentive|indifferent|sub-?par) "
        r"(customer )?service\b",
        r"\bservice (was|is) (poor|bad|terrible|horrible|awful|lousy|mediocre|rude|the worst|non-?existent)",
        r"\b(flight attendant|gate agent|ticket agent|crew member)s?\b",
        r"\bhung up on (me|us)\b",
        r"态度.{0,4}(差|不好|恶劣|冷|凶|一般|有问题)",
        r"服务(员|生)?.{0,6}(差|凶|不好|冷漠|不理)",
        r"(店员|前台|客服|骑手|老板).{0,6}(差|凶|不耐烦|冷漠|不理)",
        r"爱理不理|不理人|甩脸|脸色|不耐烦|冷漠|骂人|凶巴巴",
        r"(没有|没|不肯|不愿|拒绝)(说|给)?(一句|个)?道歉|道歉都没(?!用)|连(句|个|一句)道歉",
    ],
    "staff_knowledge": [
        r"\b(didn'?t|did not|doesn'?t|don'?t) know\b",
        r"\b(clueless|no idea|untrained|inexperienced|incompetent|wrong information|misinformed)\b",
        r"\bwrong (order|dish|item|gate|info)\b",
        r"\bgot (my|our|the) order wrong\b",
        r"\b(could ?n[o']t|can'?t|unable to) (answer|explain|tell (me|us))\b",
        r"不专业",
        r"一问三不知",
        r"(说|讲|问)不清",
        r"(上|送|点|拿|做)错",
        r"搞错|弄错",
    ],
    "not_resolved": [
        r"\b(still|never) (not )?(fixed|resolved|refunded|heard back|got a response)",
        r"\b(still )?(haven.?t|hasn.?t|have not|has not|never) (got|gotten|received|heard)",
        r"\bno (response|reply|answer|call back|callback)\b",
        r"\b(nobody|no one|noone) (called|answered|replied|got back|calls? back|responded|cares?)",
        r"\bnever (called|got back|responded|replied|call(ed)? (me|us) back)\b",
        r"\b(second|third|fourth|3rd|4th) time\b",
        r"\bagain and again\b",
        r"\b(still|yet to) (waiting for|receive|get) (my|a|the|our) (refund|response|reply|answer|bag|luggage)",
        r"没人理",
        r"没人管",
        r"(没|没有|未|不)解决",
        r"(客服|商家|卖家).{0,4}(不回|没回|不理|没人)",
        r"不退款|不给退|拒绝退款|退款.{0,4}(没|还没|迟迟)",
        r"踢皮球|推来推去|互相推",
        r"不接电话|电话(打不通|没人接)",
    ],
    "product_quality": [
        r"\b(cold|stale|burnt|burned|bland|soggy|undercooked|raw|overcooked|watery|bitter|tasteless|greasy|salty)\b",
        r"\b(mediocre|inedible|disgusting|flavou?rless|rubbery|dry|tough|lukewarm|mushy|rancid|spoiled|gross)\b",
        r"\b(tasted|tastes|taste|smelled|smells) (bad|awful|terrible|off|like nothing|funny|weird)\b",
        r"\b(food|dish|dishes|meal|pizza|sushi|burger|coffee|steak|pasta|drinks?)\b[^.]{0,30}"
        r"\b(was|were|is|are)\b[^.]{0,10}\b(bad|awful|terrible|horrible|average|disappointing|not (good|great|fresh)"
        r"|nothing special)",
        r"\b(broken|defective|faulty|poor quality|cheaply made)\b",
        r"难喝",
        r"难吃",
        r"质量",
        r"不新鲜|变质|馊了|(凉|冷)(了|的)|太咸|太油|没味道",
    ],
    "price_billing": [
        r"\b(overcharged|overpriced|over-priced|charged (me |us )?(twice|extra|for)|double charged|refund(ed)?)\b",
        r"\b(too expensive|rip[- ]?off|pricey|expensive|not cheap|steep|exorbitant|billing|hidden (fees?|charges?))\b",
        r"\b(high|crazy|ridiculous|outrageous|insane|inflated) prices?\b",
        r"\bprices? (is|are|was|were) (a bit |a little |way |too |so |very |pretty |rather )?"
        r"(high|steep|outrageous|crazy|ridiculous|insane)",
        r"\bnot worth (the|it for the) (price|money|cost)\b|\bfor the (price|cost)s?\b",
        r"\bwrong (bill|charge|amount)\b",
        r"多收",
        r"太贵",
        r"退款",
        r"乱收费|收费",
    ],
    "cleanliness_ambience": [
        r"\b(dirty|filthy|sticky|gross|smelly|smelled|stinks?|messy|unclean|cockroach|roach|mice|flies)\b",
        r"\b(too loud|loud|noisy|freezing in there|cramped|crowded|overcrowded|packed|tight|uncomfortable|dingy)\b",
        r"\btables? (were|are|is|was)? ?(too |so |very )?close\b",
        r"\b(bathroom|restroom|toilet)s?\b",
        r"\b(no|lacking|lacks|dreadful|horrible|terrible) (atmosphere|ambiance|ambience|decor)\b",
        r"\b(atmosphere|ambiance|ambience|decor) (is|was) (lacking|dreadful|horrible|terrible|awful|not)",
        r"脏",
        r"吵",
        r"环境(差|不好|一般)",
    ],
    "delivery_logistics": [
        r"\b(delivery|courier|shipping|shipment|parcel|tracking)\b",
        r"\b(arrived|showed up|came) (late|cold|damaged|broken)",
        r"\bnever (arrived|came|showed up|got delivered)\b",
        r"\b(lost|missing|damaged|delayed) (my |our |the )?(bag|luggage|baggage|suitcase|package)s?\b",
        r"\b(bag|luggage|baggage|suitcase|package)s? (was |were |got |is |are )?(lost|missing|damaged|delayed)\b",
        r"\bbaggage claim\b",
        # Every food-delivery review names 外卖 or 送餐, so Chinese needs the delivery *and* what went wrong.
        r"(外卖|送餐|快递|骑手|配送|物流|派送|送货|小哥).{0,8}(慢|晚|迟|超时|丢|坏|破|漏|洒|撒|错|差|没送|不送|找不到)",
        r"晚到|送晚|送错|超时|洒了|撒了|漏了|没送到|送不到",
    ],
    "app_website": [
        r"\b(app|website|web site|online order(ing)?|checkout|login|log in|password|crash(ed|es|ing)?|bug|glitch)\b",
        r"\b(loyalty|rewards?) (app|points|card)\b",
        r"\b(site|page) (is |was )?(down|broken|not loading|won'?t load)\b",
        r"\berror (message|code)\b",
        r"网站",
        r"闪退",
        r"打不开",
        r"卡顿|卡死|卡住",
        r"登(录|陆)不(了|上)|无法登(录|陆)|登不上",
        r"(下单|支付|付款)(失败|不了)",
        r"软件|小程序|系统崩",
    ],
}

# Phrases that name the problem beyond doubt, in any business: a topic head (trained on restaurant reviews) may
# veto an ambiguous phrase match ("worth the wait", "slow-cooked") but never one of these. On restaurant sentences
# they change nothing (docs/topics.md); without them the head vetoed "the line at the check-in counter is insane".
_SURE_PATTERNS: dict[str, list[str]] = {
    "wait_time": [
        r"\b(long|huge|massive|ridiculous|endless) (line|queue|delay)s?\b",
        r"\b(in|the) (line|queue) (for|was|is)\b|\b(stood|standing|stuck) in (line|a queue)\b",
        r"\bstill waiting\b",
        r"\blines? (at|for) (the )?(check-?in|counter|security|gate|desk|register|drive[- ]?thru|door|bathroom)",
        r"\bline (is|was) (insane|ridiculous|huge|so long|long|crazy|massive)",
        # airlines and call centres: delays, holds, tarmacs, missed connections
        r"\bdelay(s|ed)?\b",
        r"\b(late|delayed) (flight|departure|arrival|train|bus)s?\b|\blate flight",
        r"\b(running|arrived|departed|left|showed up) \d*\s*(hours?|min(ute)?s?)? ?late\b",
        r"\bon hold\b|\bhold (time|for)\b",
        r"\b(on|sat on|sitting on|stuck on) the tarmac\b",
        r"\bmissed (my|our|the) connecti(on|ng)",
    ],
}

# Spanish: phrases that name the problem, never a bare word an English text also uses ("crudo" is on English menus,
# "Sosa" is a name). No topic head reads Spanish, so every match counts. They match none of the ~134,000 texts of our
# English corpora (docs/topics.md); tests/test_topic_signals.py.
_SPANISH_TOPIC_PATTERNS: dict[str, list[str]] = {
    "wait_time": [
        # not a business's "te / os / le / los esperamos" (we await you) nor "esperamos que" (we hope)
        r"(?<!\bte )(?<!\bos )(?<!\ble )(?<!\blos )(?<!\bles )(?<!\blas )\b(esperamos|esper[eé]|esperaron)\b(?! que\b)",
        r"\btuvimos que esperar\b",
        r"\b(tiempo de espera|horas? de espera|(sigo|seguimos) esperando|llev(o|amos) .{0,20}esperando)\b",
        r"\btard(aron|[oó]|an|amos|ando|[ií]simo)\b|\bdemor(a|[oó]|aron|an|ado)\b|\bretras(o|ad[oa])s?\b",
        r"\blent(o|a|os|as|[ií]sim[oa])\b",
        r"\b(larga|enorme|eterna) (cola|fila)\b|\b(cola|fila) (larga|enorme|eterna)\b",
        r"\b(hacer|haciendo|hicimos|hice) (la )?(cola|fila)\b",
        r"\b(\d+|una|media|dos|tres) (horas?|minutos)\b.{0,40}\b(esper|cola|fila|tard|retras|demor)",
    ],
    "staff_attitude": [
        r"\b(groser[oa]s?|maleducad[oa]s?|mal educad[oa]s?|antip[aá]tic[oa]s?|prepotentes?)\b",
        r"\b(mala|p[eé]sima|fatal) atenci[oó]n\b|\batenci[oó]n (fue |es )?(mala|p[eé]sima|fatal|nula)\b",
        r"\b(mal|p[eé]simo) servicio\b|\bservicio (fue |es )?(malo|p[eé]simo|fatal)\b",
        r"\b(camarer[oa]|meser[oa]|emplead[oa]|dependient[ea]|el personal|encargad[oa]|recepcionista|cajer[oa])s?\b"
        r".{0,40}\b(groser|maleducad|antip[aá]tic|desagradable|p[eé]sim)",
        r"\b(nos|me) (ignoraron|trataron (mal|fatal)|grit[oó]|gritaron|colg[oó] el tel[eé]fono)\b",
    ],
    "staff_knowledge": [
        r"\bno (sab[ií]an?|sabe|saben) (nada|responder|contestar|explicar)\b|\bno ten[ií]an? ni idea\b",
        r"\b(pedido|plato|orden) equivocad[oa]\b|\bse equivocaron\b",
        r"\bincompetentes?\b|\bpoco profesional(es)?\b",
    ],
    "not_resolved": [
        r"\bno (me |nos )?(lo )?(han )?(resuelto|solucionado|resolvieron|solucionaron|reembolsado)\b",
        r"\bnadie (me |nos )?(responde|contesta|contest[oó]|respondi[oó]|llam[oó]|atiende|hace caso)\b",
        r"\bsin (respuesta|soluci[oó]n)\b|\bsigo (esperando|sin (respuesta|soluci[oó]n|mi))\b",
        r"\btodav[ií]a no (me |nos )?(han|ha) (devuelto|respondido|contestado|llegado|solucionado|resuelto)\b",
        r"\b(segunda|tercera|cuarta) vez\b",
    ],
    "product_quality": [
        r"\b(quemad[oa]s?|ins[ií]pid[oa]s?|ranci[oa]s?|podrid[oa]s?|grasient[oa]s?)\b",
        # cold food, not cold weather or a cold beer
        r"\b(estaba|estaban|lleg[oó]|llegaron|vino|vinieron|sirvieron|servid[oa]s?)\b.{0,20}\bfr[ií][oa]s?\b",
        r"\b(comida|caf[eé]|sopa|pizza|hamburguesa|plato|platos|pedido|patatas|papas)\s+fr[ií][oa]s?\b",
        r"\b(asqueros[oa]s?|incomible|mala calidad|defectuos[oa]s?)\b|\bsin sabor\b|\bsab[ií]a (mal|raro|fatal)\b",
        r"\b(comida|plato|platos|producto|pizza|hamburguesa) (estaba|estaban|era|eran|lleg[oó]) "
        r"(mal[oa]?|malísim[oa]|fatal)",
    ],
    "price_billing": [
        r"\b(car[ií]sim[oa]s?|demasiado car[oa]s?|muy car[oa]s?)\b",
        r"\bprecios? (abusivos?|excesivos?|desorbitad[oa]s?)\b",
        r"\bcobr(aron|[oó]|an) (de m[aá]s|doble|dos veces|extra)\b|\bcobro (indebido|doble)\b|\breembolso\b",
    ],
    "cleanliness_ambience": [
        r"\b(suci[oa]s?|suciedad|mugre|mugrient[oa]s?|cucarachas?|ratas|ruidos[oa]s?|apestaba|ol[ií]a (mal|fatal))\b",
        r"\b(demasiado|mucho) ruido\b",
    ],
    "delivery_logistics": [
        r"\b(repartidor|mensajero|entrega|env[ií]o|paqueter[ií]a)\b",
        r"\b(pedido|paquete|comida)\b.{0,20}"
        r"\b(nunca lleg[oó]|no (ha )?lleg(ó|o|ado)|lleg[oó] (tarde|fr[ií][oa]|rot[oa]|da[ñn]ad[oa]))",
        r"\b(maleta|equipaje) (perdid|extraviad|da[ñn]ad)|\b(perdieron|extraviaron) (mi|nuestra|la) (maleta|equipaje)",
    ],
    "app_website": [
        r"\b(aplicaci[oó]n|p[aá]gina web|sitio web|la web|contrase[ñn]a|iniciar sesi[oó]n)\b",
        r"\bse (cuelga|colg[oó]|cierra sola|cerr[oó] sola|bloquea)\b",
        r"\b(no (me )?deja|no puedo) (entrar|pagar|iniciar|acceder|hacer el pedido)\b",
    ],
}

_URGENCY_PATTERNS: dict[str, list[str]] = {
    "safety_health": [
        r"\b(food poisoning|got sick|made (me|us) sick|threw up|vomit(ed|ing)?|diarrh(o)?ea|allerg(y|ic)|hospital)\b",
        r"\b(cockroach|roach|rat|mouse|mice|mold|mould|hair in (my|the))\b",
        r"\b(burn(ed|t) (my|me)|injur(y|ed)|slipped|fire hazard|unsafe|dangerous)\b",
        r"\b(intoxicaci[oó]n|me enferm[eé]|nos enfermamos|vomit(é|e|ando|amos)|diarrea|alergia|al[eé]rgic[oa])\b",
        r"\b(cucarachas?|ratas?|moho)\b|\bpelo en (la|el|mi)\b",
        r"食物中毒",
        r"拉肚子",
        r"过敏",
    ],
    "legal_threat": [
        r"\b(lawyer|attorney|sue|suing|lawsuit|legal action|small claims|court)\b",
        r"\b(report(ing)? (you|this) to|health department|health inspector|bbb|trading standards)\b",
        r"\b(abogad[oa]|demandar(los|les)?|denuncia|denunciar(los|les)?|hoja de reclamaciones|profeco)\b",
        r"起诉",
        r"投诉到",
        r"律师",
    ],
    "churn_threat": [
        r"\bnever (coming|going) back\b",
        r"\b(never|won'?t) (be )?(back|return|again)\b",
        r"\blast time i\b",
        r"\b(cancel(led|ing)? my|switching to|taking my business)\b",
        r"\bgoodbye\b",
        r"\bno (vuelvo|volvemos|volver[eé]|volveremos|regreso|regresar[eé]|regresaremos)\b(?! a casa)",
        r"\b(nunca m[aá]s|jam[aá]s volver[eé]?)\b",
        r"\b(darme de baja|cancelar (mi|la) (cuenta|suscripci[oó]n))\b",
        r"再也不",
        r"不会再(来|去|买|点)",
    ],
}

_QUESTION = re.compile(
    r"\?\s*$|\?\s|¿|\b(does|do|is|are|can|could|will|when|what time|how (do|can|long|much))\b[^.!]*\?|吗[？?]|[？]"
)


def _compile(patterns: dict[str, list[str]]) -> dict[str, re.Pattern[str]]:
    return {name: re.compile("|".join(f"(?:{p})" for p in pats), re.IGNORECASE) for name, pats in patterns.items()}


_TOPIC_RE = _compile(
    {t: pats + _SURE_PATTERNS.get(t, []) + _SPANISH_TOPIC_PATTERNS.get(t, []) for t, pats in _TOPIC_PATTERNS.items()}
)
_SURE_RE = _compile(_SURE_PATTERNS)
_URGENCY_RE = _compile(_URGENCY_PATTERNS)


def phrase_topics(text: str) -> list[str]:
    """Topics whose phrase list matches ``text``, whatever its label."""
    return [topic for topic, pattern in _TOPIC_RE.items() if pattern.search(text)]


def sure_phrase_topics(text: str) -> list[str]:
    """Topics matched by a phrase that names the problem beyond doubt: no topic head vetoes these."""
    return [topic for topic, pattern in _SURE_RE.items() if pattern.search(text)]


def tag_topics(
    text: str,
    label: str,
    head_scores: Mapping[str, float] | None = None,
    phrase_floors: Mapping[str, float] | None = None,
) -> list[str]:
    """Complaint topics mentioned in ``text`` (only complaints carry topics).

    ``head_scores`` are a topic head's scores for the text (``Prediction.topic_scores``);
    a topic is tagged when its score is ≥ ``DECISION_SCORE``, or when its phrase list matches and
    the score is at least the topic's phrase floor (``phrase_floors``, from the head; without a
    head every phrase match counts). ``other`` only when nothing else fires.
    """
    if label != "complaint":
        return []
    found = set(phrase_topics(text))
    if head_scores and phrase_floors:
        # "Worth the wait" matches the waiting phrases; the head, which read the whole sentence, vetoes it,
        # unless the phrase is one that names the problem beyond doubt.
        sure = set(sure_phrase_topics(text))
        found = {t for t in found if t in sure or head_scores.get(t, 1.0) >= phrase_floors.get(t, 0.0)}
    if head_scores:
        found.update(t for t, score in head_scores.items() if score >= DECISION_SCORE and t in TOPICS and t != "other")
    return [topic for topic in TOPICS if topic in found] or ["other"]


def urgency_flags(text: str, author_reach: int | None = None) -> list[str]:
    flags = [flag for flag, pattern in _URGENCY_RE.items() if pattern.search(text)]
    if author_reach is not None and author_reach >= HIGH_REACH:
        flags.append("high_reach")
    if _QUESTION.search(text):
        flags.append("question")
    return flags
