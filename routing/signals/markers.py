"""Multilingual frustration-marker tables: regex fragments per category and language."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

logger = logging.getLogger(__name__)

MarkerTable = Mapping[str, tuple[str, ...]]
"""Language code → regex fragments.

Fragments are matched, as whole words, against text that is casefolded (so write German ß as ss),
with ё as е and every apostrophe variant as '. Each alternative of a fragment must start with a
letter or a [class], or with a (?:...) group of such words, optionally followed by `?`.
"""

_EN_AUX = r"(?:'?s| is| was)"
_EN_NOT = r"(?:n'?t|n| not)"

COMPLAINT: Final[MarkerTable] = MappingProxyType(
    {
        "en": (
            rf"(?:that|this|it){_EN_AUX} (?:(?:just|completely|totally|all|so|still) )?"
            r"(?:wrong|incorrect|false|not (?:right|correct|true|it))",
            r"(?:you'?re|you are|you were|u r) (?:(?:just|completely|totally|so) )?"
            r"(?:wrong|not (?:listening|helping|(?:very |at all )?helpful|making (?:any )?sense))",
            r"not what (?:i|we) (?:asked|meant|wanted|said|need(?:ed)?)",
            r"not what (?:i|we)(?:'?m|'?re| am| are| was| were) (?:talking|asking) (?:about|for)",
            rf"you did{_EN_NOT} (?:even )?(?:answer|read|listen|understand|ask|help)",
            rf"i did{_EN_NOT} ask (?:for |about )?(?:that|this|it)",
            rf"(?:did|does|do){_EN_NOT} answer (?:my|the) question",
            rf"(?:does|did|do){_EN_NOT} (?:even |really )?make (?:any |much )?sense",
            r"makes? (?:absolutely )?no sense|not making (?:any )?sense|nonsense",
            r"off[- ]topic|wrong answer|got (?:it|that) wrong",
            r"(?:as|like) i (?:already |just )?(?:said|told you|mentioned|asked)",
            r"i (?:already|just) (?:said|told you|asked|mentioned|gave you)",
            r"i told you|how many times",
            r"useless|unhelpful|not (?:very |at all |really )?helpful",
            rf"(?:does|did|is|are){_EN_NOT} help(?:ing|ful)?",
            r"(?:you )?(?:keep|kept) (?:repeating|ignoring|saying the same)",
            r"(?:are|r) (?:you|u) (?:even )?(?:listening|reading)|you(?:'?re| are) ignoring",
            rf"(?:this|that|it){_EN_AUX} (?:ridiculous|absurd|pointless|a joke)",
        ),
        "es": (
            r"(?:eso|esto) (?:est[aá]|es) (?:mal|incorrecto|equivocado|falso)",
            r"(?:est[aá]s|est[aá]) equivocad[oa]|te equivocas|respuesta incorrecta|incorrect[oa]",
            r"no (?:es|era) (?:eso )?lo que (?:yo )?(?:te )?"
            r"(?:pregunt[eé]|ped[ií]|quer[ií]a|dije|necesito)",
            r"no (?:me )?(?:respondiste|contestaste|has (?:respondido|contestado)|respondes)",
            r"no tiene (?:ning[uú]n )?sentido|sin sentido|no tiene nada que ver",
            r"no (?:me )?sirves? (?:de|para) nada",
            r"no (?:me )?(?:ayuda|ayudas|est[aá]s ayudando)",
            r"in[uú]til(?:es)?",
            r"ya te (?:lo )?(?:dije|pregunt[eé]|expliqu[eé])|como (?:ya )?te dije",
            r"no me (?:entiendes|escuchas|est[aá]s escuchando)|no entiendes nada",
            r"(?:es|qu[eé]) (?:rid[ií]culo|absurdo)",
        ),
        "pt": (
            r"(?:isso|isto) (?:est[aá]|t[aá]|[eé]) (?:errado|incorreto|falso)",
            r"(?:voc[eê]|tu) (?:est[aá]s?|t[aá]) errad[oa]|resposta errada|incorret[oa]",
            r"n[aã]o (?:foi|[eé]|era) (?:isso )?(?:o )?que (?:eu )?(?:perguntei|pedi|queria|disse)",
            r"n[aã]o (?:me )?respond(?:eu|este|e)",
            r"n[aã]o faz (?:nenhum |o menor |o m[ií]nimo )?sentido|sem sentido",
            r"n[aã]o (?:me )?(?:ajuda|ajudou|est[aá] ajudando)|n[aã]o serve (?:pra|para) nada",
            r"in[uú]til|in[uú]teis",
            r"j[aá] (?:te )?(?:disse|falei|perguntei|expliquei)",
            r"como (?:eu )?(?:j[aá] )?(?:disse|falei)",
            r"(?:voc[eê]|tu) n[aã]o (?:me )?(?:entende|entendeu|est[aá] entendendo|escuta|l[eê])",
            r"(?:que|isso [eé]) rid[ií]culo",
        ),
        "ru": (
            r"(?:это|ответ) (?:совсем |абсолютно |опять )?(?:неправильн|неверн)\w*",
            r"(?:неправильный|неверный) ответ",
            r"(?:ты|вы) (?:ошибаешься|ошибаетесь|не прав[аы]?|неправ[аы]?)",
            r"не (?:то|это),? (?:что|о чем) я (?:спрашивал|спросил|просил|хотел|имел в виду)\w*",
            r"(?:ты|вы) не ответил\w*|не ответил\w* на (?:мой )?вопрос",
            r"(?:нет|никакого) смысла|бессмысл\w*|бред\w*|чушь|ерунд\w*",
            r"(?:я же|я уже|я ведь) (?:сказал|говорил|спросил|спрашивал|писал|объяснял)\w*",
            r"(?:ты|вы) (?:меня )?не (?:понимаешь|понимаете|понял|поняли|слушаешь|слушаете)",
            r"бесполезн\w*|толку (?:нет|ноль)|никакого толку|(?:не|ничем не) помог\w*",
        ),
        "de": (
            r"(?:das|dies|es) (?:ist|war) (?:doch |leider |total |völlig |ganz |einfach )?"
            r"(?:falsch|nicht (?:richtig|korrekt|wahr))",
            r"(?:das )?stimmt (?:doch |so |überhaupt |gar )?nicht|falsche antwort",
            r"du (?:liegst|hast) (?:\w+ )?falsch|du irrst dich|sie irren sich",
            r"nicht,? (?:das,? )?was ich (?:gefragt|gemeint|gewollt|gesagt|wollte|meinte|brauche)",
            r"(?:du hast|sie haben) (?:meine frage |mir )?nicht "
            r"(?:beantwortet|geantwortet|zugehört)",
            r"keine antwort auf (?:meine )?frage",
            r"(?:ergibt|macht) (?:doch |überhaupt |gar )?keinen sinn|sinnlos",
            r"unsinn|quatsch|schwachsinn|blödsinn",
            r"(?:hilft|hilfst|helfen sie) (?:mir )?(?:überhaupt |gar |leider )?nicht",
            r"bringt (?:mir )?(?:gar )?nichts|nutzlos|unbrauchbar",
            r"(?:ich habe|habe? ich) (?:doch |schon |bereits |dir |ihnen |es )*"
            r"(?:gesagt|gefragt|geschrieben|erklärt)",
            r"wie (?:ich )?(?:schon |bereits )?(?:gesagt|geschrieben)",
            r"(?:du verstehst|sie verstehen) (?:mich )?(?:einfach |überhaupt |gar )?nicht",
        ),
    }
)
"""Says the previous answer was wrong, unhelpful, off topic or ignored the question."""

CONFUSION: Final[MarkerTable] = MappingProxyType(
    {
        "en": (
            r"what (?:are|r) (?:you|u) (?:even )?(?:talking about|saying|on about)",
            r"what you(?:'?re| are) (?:even )?(?:talking about|saying)",
            r"what (?:do|did) (?:you|u) (?:even )?mean|what does (?:that|this) (?:even )?mean",
            rf"i do{_EN_NOT} (?:understand|get it|follow)|i(?:'?m| am) (?:so )?confused",
            r"(?:what|huh|wut)\?+",
        ),
        "es": (
            r"de qu[eé] (?:me )?(?:est[aá]s )?habla(?:s|ndo)",
            r"qu[eé] (?:quieres|quiere|quiso) decir",
            r"no (?:te )?entiendo|no entend[ií]|qu[eé]\?+|c[oó]mo\?+",
        ),
        "pt": (
            r"do que (?:voc[eê] )?(?:est[aá]|t[aá]) falando",
            r"o que (?:voc[eê] )?quer dizer|como assim",
            r"n[aã]o entend[ie]|o qu[eê]\?+",
        ),
        "ru": (
            r"(?:о чем|про что) (?:ты|вы) (?:вообще )?(?:говоришь|говорите)",
            r"что (?:ты|вы) (?:имеешь|имеете) в виду|в смысле",
            r"(?:я )?не (?:понимаю|понял|поняла)|что\?+",
        ),
        "de": (
            r"wovon (?:redest|sprichst) du|wovon reden sie",
            r"was (?:meinst du|meinen sie)(?: damit)?",
            r"(?:ich )?verstehe (?:das |dich |sie )?nicht|wie bitte|häh?\?*|was\?+",
        ),
    }
)
"""Asks what the previous answer meant: a weaker sign than a complaint."""

INSULT: Final[MarkerTable] = MappingProxyType(
    {
        "en": (
            r"idiot(?:s|ic)?|moron(?:s|ic)?|imbecile|dumbass|jackass|asshole",
            r"(?:stupid|dumb)(?! question)|pathetic|incompetent",
            r"(?:piece of|pos) (?:shit|crap|garbage|junk)|shut up|screw you|wtf|fu+ck\w*|fck\w*",
            r"(?:you|u) suck",
            r"(?:this|it|you)(?:'?s| is| are|'?re) (?:\w+ )?(?:garbage|trash|crap|rubbish)",
        ),
        "es": (
            r"idiota(?:s)?|est[uú]pid[oa]s?|tont[oa]s?|imb[eé]cil(?:es)?|pendej[oa]s?",
            r"eres (?:un|una) (?:burr[oa]|basura|in[uú]til)|(?:es|eres) (?:una )?basura",
            r"mierda|c[aá]llate|maldit[oa]s?",
        ),
        "pt": (
            r"idiota(?:s)?|est[uú]pid[oa]s?|burr[oa]s?|imbecil|imbecis|ot[aá]ri[oa]s?|babaca",
            r"lixo|porcaria|merda|cala a boca",
        ),
        "ru": (
            r"идиот\w*|туп(?:ой|ая|ое|ые|ица)(?! уг)|дура(?:к\w*|цк\w*)?",
            r"дебил\w*|кретин\w*|придур\w*|долбо\w*",
            r"заткнись|заткнитесь|херн\w*|говно|дерьмо|отстой",
        ),
        "de": (
            r"idiot(?:in|en)?|vollidiot\w*|depp|trottel|schwachkopf|dummkopf",
            r"(?:du bist|sie sind) (?:so |echt |wirklich |total |einfach )?"
            r"(?:dumm|blöd|doof|unfähig)",
            r"(?:dumm|blöd|doof)(?:e[rs]?)? (?:bot|maschine|ding|programm|ki)",
            r"scheisse|scheiss\w*|halt (?:die|deine) (?:klappe|fresse)",
        ),
    }
)
"""Calls the assistant names or swears at it."""

ASKS_FOR_HUMAN: Final[MarkerTable] = MappingProxyType(
    {
        "en": (
            r"(?:talk|speak|chat|connect|transfer|put|get) (?:me )?(?:to|with|through to) "
            r"(?:(?:a|an|the|some|your|real|actual|live) )*"
            r"(?:human|person|agent|operator|representative|rep|manager|supervisor|someone real"
            r"|customer (?:service|support|care))",
            r"(?:real|live|actual) (?:human|person|agent)|human (?:agent|being|operator|support)",
            r"(?:get|give) me (?:a |an |the )?(?:human|person|agent|operator|manager|supervisor)",
        ),
        "es": (
            r"(?:hablar|habla|comunicarme|p[aá]same|con[eé]ctame|comun[ií]came) con "
            r"(?:(?:un|una|el|la|alg[uú]n|alguna|otra) )?(?:persona|humano|agente|operador(?:a)?"
            r"|asesor(?:a)?|representante|encargad[oa]|supervisor(?:a)?)",
            r"persona (?:real|de verdad)|(?:agente|operadora?|asesora?) humano",
        ),
        "pt": (
            r"(?:falar|fala|conversar|me passa|me transfere|me transfira) com "
            r"(?:(?:um|uma|o|a|algum|alguma) )?(?:humano|pessoa|atendente|agente|operador(?:a)?"
            r"|gerente|representante|algu[eé]m)",
            r"(?:pessoa|atendente) (?:real|humano|humana)|atendimento humano",
        ),
        "ru": (
            r"(?:позов\w*|позвать|соедин\w*|переключ\w*|свяж\w*|дай\w*)(?: \w+){0,2} (?:с |на )?"
            r"(?:жив\w* |реальн\w* |настоящ\w* )?"
            r"(?:оператор|человек|менеджер|специалист|сотрудник|консультант)\w*",
            r"(?:поговорить|связаться|общаться|говорить) с (?:жив\w* |реальн\w* |настоящ\w* )?"
            r"(?:оператор|человек|менеджер|специалист|сотрудник|консультант)\w*",
            r"жив\w* (?:человек|оператор)\w*|(?:нужен|хочу) (?:живого )?оператор\w*",
        ),
        "de": (
            r"(?:mit )?(?:einem|einer|nem|ner) (?:echten |richtigen |realen )?"
            r"(?:menschen|person|mitarbeiter(?:in)?|berater(?:in)?|kundenberater(?:in)?"
            r"|sachbearbeiter(?:in)?) (?:sprechen|reden)",
            r"(?:echte[nrm]?|richtige[nrm]?|reale[nrm]?|lebende[nrm]?) (?:mensch|menschen|person)",
            r"mit (?:dem |einem )?(?:kundendienst|kundenservice)",
            r"(?:verbinde|verbinden sie) mich|menschliche[nrm]? (?:mitarbeiter|berater|agent)\w*",
        ),
    }
)
"""Asks to be handed over to a person: a human, an agent, an operator."""
