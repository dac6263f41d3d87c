"""Phrase-level swaps that thesauri do not give: function words, multiword phrases, idioms, institutions.

Each table maps a lower-case phrase to its replacements, as seen in the output of commercial spinners. Profiles pick
different tables and different replacements from the lists (see `training/spin.py`), so a model trained on some
profiles meets unseen phrase choices on a held-out one.
"""

from __future__ import annotations

FUNCTION = {
    "but": ["however", "but", "nonetheless"],
    "also": ["additionally", "moreover", "as well"],
    "said": ["mentioned", "stated", "stated that"],
    "says": ["says", "mentions", "states"],
    "about": ["approximately", "round", "about"],
    "because": ["as a result of", "due to the fact that", "since"],
    "while": ["whereas", "whilst", "even as"],
    "after": ["after", "following", "submit"],
    "before": ["earlier than", "prior to", "previous to"],
    "however": ["nonetheless", "nevertheless", "but"],
    "so": ["so", "thus", "therefore"],
    "many": ["many", "quite a few", "numerous"],
    "most": ["most", "maximum", "the majority of"],
    "more": ["extra", "more", "further"],
    "than": ["than", "in comparison with"],
    "in": ["in", "inside", "within"],
    "on": ["on", "upon"],
    "with": ["with", "together with"],
    "from": ["from", "from"],
    "over": ["over", "over", "above"],
    "until": ["till", "until", "up till"],
    "still": ["nonetheless", "still", "nevertheless"],
    "big": ["massive", "huge", "large"],
    "get": ["get", "obtain", "receive"],
    "make": ["make", "make", "create"],
    "help": ["help", "assist", "support"],
    "show": ["present", "show", "display"],
}

PHRASES = {
    "according to": ["in accordance with", "in line with", "based on"],
    "last year": ["final 12 months", "final yr", "last 12 months"],
    "this year": ["this 12 months", "this yr", "this year"],
    "next year": ["subsequent 12 months", "next yr", "subsequent year"],
    "year": ["12 months", "yr", "year"],
    "years": ["years", "years", "yrs"],
    "as well as": ["in addition to", "in addition to", "together with"],
    "at least": ["at the least", "no less than", "not less than"],
    "in order to": ["so as to", "in an effort to", "to be able to"],
    "a lot of": ["a variety of", "plenty of", "quite a lot of"],
    "such as": ["comparable to", "akin to", "similar to"],
    "so far": ["thus far", "to date", "up to now"],
    "as a result": ["consequently", "because of this", "in consequence"],
    "for example": ["for instance", "for instance", "as an illustration"],
    "in addition": ["moreover", "additionally", "as well as"],
    "more than": ["greater than", "more than", "over"],
    "less than": ["lower than", "less than", "fewer than"],
    "people": ["individuals", "folks", "people"],
    "company": ["firm", "company", "agency"],
    "government": ["authorities", "authorities", "govt"],
    "week": ["week", "week", "seven days"],
    "market": ["market", "market", "marketplace"],
    "percent": ["%", "per cent", "p.c."],
    "per cent": ["%", "p.c.", "percent"],
}

IDIOMS = {
    "on the other hand": ["alternatively", "however", "then again"],
    "at the same time": ["on the similar time", "concurrently", "on the same time"],
    "in the long run": ["in the long term", "ultimately", "in the end"],
    "take part": ["participate", "take part", "partake"],
    "take place": ["happen", "occur", "take place"],
    "set up": ["arrange", "set up", "establish"],
    "carry out": ["perform", "conduct", "carry out"],
    "point out": ["level out", "point out", "indicate"],
    "find out": ["discover", "find out", "learn"],
    "going to": ["going to", "going to", "gonna"],
    "a number of": ["quite a few", "various", "numerous"],
    "in the wake of": ["within the wake of", "following", "after"],
    "in spite of": ["regardless of", "despite", "in spite of"],
    "on top of": ["on high of", "on prime of", "in addition to"],
}

INSTITUTIONS = {
    "wall street": ["wall avenue", "wall road", "wall street"],
    "white house": ["white home", "white residence", "white house"],
    "prime minister": ["prime minister", "top minister", "high minister"],
    "supreme court": ["supreme courtroom", "supreme court docket", "superb court"],
    "high court": ["excessive courtroom", "high courtroom", "high court docket"],
    "federal reserve": ["federal reserve", "federal book", "federal hold"],
    "bank of england": ["financial institution of england", "bank of england", "monetary institution of england"],
    "united states": ["united states", "united states", "usa"],
    "united nations": ["united countries", "united international locations", "united nations"],
    "european union": ["european union", "european union", "eu"],
    "stock exchange": ["inventory change", "stock trade", "inventory alternate"],
    "new york": ["new york", "new york", "ny"],
    "house of commons": ["home of commons", "house of commons", "residence of commons"],
    "world cup": ["world cup", "global cup", "international cup"],
    "police": ["police", "cops", "law enforcement"],
}

TABLES = {"function": FUNCTION, "phrases": PHRASES, "idioms": IDIOMS, "institutions": INSTITUTIONS}
