"""The embedded synthetic world (DESIGN.md §3.3): a seeded corpus and four task families, no downloads.

A made-up atlas of countries (invented, pronounceable names) with five attributes each, a small cast of
roles (teachers, coaches, ...) and causes, arithmetic narratives, containment chains and filler prose.

- knowledge: "The capital of Veloria is" -> " Quenmar". Countries are mentioned at Zipfian frequencies
  (rank r with weight r^-s), and every fact is stated at least once (a gazetteer entry), so recall of a
  fact depends on how often it was seen: it improves smoothly with tokens (more exposures) and with model
  size (more facts kept). Each row records `mentions`, the number of train-corpus statements of its fact.
- arithmetic: add/take-away narratives of 1-3 steps (with or without the worked equations) and counting
  patterns. Test questions are drawn first and their combinations (who, what, start, operations; or the
  pattern's direction, step and start) are excluded from the corpus, so none appears verbatim.
- analogy: "Teachers explain lessons to students. Coaches explain plays to" -> " players" (also the
  workplace, tool and cause-effect relations). Roles and causes are mentioned at Zipfian frequencies too
  (each at least once); test pairs are drawn uniformly and never appear side by side in the corpus.
- spatial: "The key is in the box. The box is in the drawer. So the key is in the" -> " drawer": an item in 1-4
  nested containers (each link to one of the holder's usual places), asked for the outermost container from
  1-4 hops below it; the row's kind names the level ("2-hop 3-link shuffled distractor"). Level 1 states the
  answer in the prompt; each further level adds a link to follow. Statements come in random order, some with
  a distractor; test chains (whichever object they ask about) are excluded from the corpus.

Answers carry their leading space (prompt + answer is the full text). Same seed -> byte-identical files:
every random draw comes from `random.Random` streams seeded by strings (never from set or hash order).
"""

import functools
import hashlib
import json
import logging
import os
import random
import time

from t2scaling.atomic import atomic_file

logger = logging.getLogger(__name__)

FAMILIES = ("knowledge", "arithmetic", "analogy", "spatial")
VERSION = 2  # bump when the generator's output changes for a given seed

# ---------------------------------------------------------------------------------------------------------
# Lexicon. Real words for attribute values, roles and objects; invented names for countries, cities,
# languages and people.

COLOURS = ["red", "blue", "green", "yellow", "white", "black", "purple", "orange", "grey", "brown", "pink", "gold"]
ANIMALS = ["fox", "owl", "bear", "wolf", "deer", "hare", "otter", "eagle", "heron", "badger", "lynx", "swan",
           "crane", "falcon", "horse", "goat", "seal", "whale", "tiger", "lion", "raven", "beaver", "moose", "crow"]
EXPORTS = ["copper", "wool", "salt", "timber", "silk", "tea", "glass", "rice", "honey", "cheese", "iron", "cotton",
           "wine", "amber", "pepper", "marble", "leather", "paper", "silver", "coffee", "grain", "olives", "linen",
           "spices"]

ATTRIBUTES = ("capital", "language", "flag", "animal", "export")
# One canonical question per attribute: prompt, then " value" completes it.
KNOWLEDGE_PROMPTS = {
    "capital": "The capital of {e} is",
    "language": "The people of {e} speak",
    "flag": "The flag of {e} is",
    "animal": "The national animal of {e} is the",
    "export": "The main export of {e} is",
}
# Corpus statements: the canonical sentence (prompt + " value.") and paraphrases of the same fact.
KNOWLEDGE_PARAPHRASES = {
    "capital": ["{v} is the capital of {e}.", "In {e}, the capital city is {v}.",
                "The government of {e} sits in {v}.", "{e} is ruled from {v}, its capital."],
    "language": ["In {e}, people speak {v}.", "{v} is the language of {e}.", "Most people in {e} speak {v}.",
                 "Children in {e} learn {v} at home."],
    "flag": ["{e} has a {v} flag.", "The people of {e} fly a {v} flag.", "The colour of the flag of {e} is {v}.",
             "A {v} flag flies over {e}."],
    "animal": ["The {v} is the national animal of {e}.", "In {e}, the {v} is a national symbol.",
               "The coins of {e} show a {v}, the national animal."],
    "export": ["{e} exports a lot of {v}.", "{e} is famous for its {v}.", "Ships leave {e} full of {v}.",
               "Much of the {v} in the markets comes from {e}."],
}
CANONICAL_SHARE = 0.4  # fraction of statements in the exact question form
COUNTRY_FILLER = ["{e} is a country with many rivers.", "Travellers often visit {e} in spring.",
                  "The roads of {e} are long and quiet.", "Winters in {e} can be cold.",
                  "Many stories are told about {e}.", "Merchants from {e} travel far."]

# Roles: singular, plural, verb (plural form), verb (singular form), thing, preposition, recipients, place, tool.
ROLES = [
    ("teacher", "teachers", "explain", "explains", "lessons", "to", "students", "classroom", "chalk"),
    ("coach", "coaches", "explain", "explains", "plays", "to", "players", "field", "whistle"),
    ("doctor", "doctors", "give", "gives", "medicine", "to", "patients", "hospital", "stethoscope"),
    ("waiter", "waiters", "serve", "serves", "meals", "to", "diners", "restaurant", "tray"),
    ("librarian", "librarians", "lend", "lends", "books", "to", "readers", "library", "catalogue"),
    ("baker", "bakers", "bake", "bakes", "bread", "for", "villagers", "bakery", "oven"),
    ("farmer", "farmers", "grow", "grows", "vegetables", "for", "markets", "farm", "plough"),
    ("courier", "couriers", "deliver", "delivers", "parcels", "to", "households", "depot", "van"),
    ("chef", "chefs", "cook", "cooks", "dinners", "for", "guests", "kitchen", "knife"),
    ("pilot", "pilots", "fly", "flies", "passengers", "to", "airports", "cockpit", "radio"),
    ("nurse", "nurses", "bring", "brings", "bandages", "to", "patients", "clinic", "thermometer"),
    ("mechanic", "mechanics", "repair", "repairs", "cars", "for", "drivers", "garage", "wrench"),
    ("tailor", "tailors", "sew", "sews", "coats", "for", "customers", "shop", "needle"),
    ("carpenter", "carpenters", "build", "builds", "tables", "for", "families", "workshop", "saw"),
    ("shepherd", "shepherds", "lead", "leads", "sheep", "to", "pastures", "meadow", "staff"),
    ("fisherman", "fishermen", "sell", "sells", "fish", "to", "traders", "harbour", "net"),
    ("judge", "judges", "read", "reads", "verdicts", "to", "juries", "courtroom", "gavel"),
    ("banker", "bankers", "lend", "lends", "money", "to", "merchants", "bank", "ledger"),
    ("gardener", "gardeners", "plant", "plants", "roses", "for", "neighbours", "garden", "spade"),
    ("painter", "painters", "paint", "paints", "portraits", "for", "collectors", "studio", "brush"),
    ("writer", "writers", "write", "writes", "stories", "for", "children", "study", "pen"),
    ("singer", "singers", "sing", "sings", "songs", "to", "audiences", "theatre", "microphone"),
    ("guard", "guards", "open", "opens", "gates", "for", "visitors", "gatehouse", "lantern"),
    ("miner", "miners", "dig", "digs", "coal", "for", "factories", "mine", "pickaxe"),
    ("potter", "potters", "make", "makes", "bowls", "for", "kitchens", "pottery", "wheel"),
    ("smith", "smiths", "forge", "forges", "horseshoes", "for", "horses", "forge", "hammer"),
    ("sailor", "sailors", "carry", "carries", "cargo", "to", "ports", "ship", "rope"),
    ("guide", "guides", "show", "shows", "trails", "to", "hikers", "lodge", "map"),
    ("vet", "vets", "treat", "treats", "animals", "for", "farmers", "surgery", "syringe"),
    ("clerk", "clerks", "file", "files", "papers", "for", "managers", "office", "stamp"),
    ("actor", "actors", "perform", "performs", "scenes", "for", "crowds", "playhouse", "script"),
    ("astronomer", "astronomers", "show", "shows", "stars", "to", "visitors", "observatory", "telescope"),
]
# Causes: cause, verb agreeing with it, patient, effect ("Heat makes ice melt.").
CAUSES = [
    ("Heat", "makes", "ice", "melt"), ("Cold", "makes", "water", "freeze"), ("Wind", "makes", "kites", "fly"),
    ("Rain", "makes", "grass", "grow"), ("Fire", "makes", "wood", "burn"), ("Sun", "makes", "clothes", "dry"),
    ("Soap", "makes", "hands", "clean"), ("Sugar", "makes", "tea", "sweet"), ("Salt", "makes", "soup", "salty"),
    ("Music", "makes", "children", "dance"), ("Jokes", "make", "people", "laugh"),
    ("Exercise", "makes", "muscles", "strong"), ("Pepper", "makes", "noses", "sneeze"),
    ("Smoke", "makes", "eyes", "water"), ("Onions", "make", "cooks", "cry"), ("Thunder", "makes", "dogs", "bark"),
    ("Frost", "makes", "windows", "white"), ("Yeast", "makes", "dough", "rise"), ("Storms", "make", "ships", "rock"),
    ("Practice", "makes", "players", "better"), ("Sleep", "makes", "babies", "calm"),
    ("Light", "makes", "flowers", "open"), ("Water", "makes", "seeds", "sprout"),
    ("Coffee", "makes", "workers", "alert"),
]

PEOPLE_COUNT = 48  # invented first names used in arithmetic narratives
OBJECTS = [("apple", "apples"), ("shell", "shells"), ("coin", "coins"), ("marble", "marbles"),
           ("sticker", "stickers"), ("book", "books"), ("toy", "toys"), ("pencil", "pencils"),
           ("stamp", "stamps"), ("card", "cards"), ("egg", "eggs"), ("button", "buttons"),
           ("cookie", "cookies"), ("bead", "beads"), ("flower", "flowers"), ("stone", "stones")]
GAINS = [("find", "finds"), ("buy", "buys"), ("get", "gets"), ("pick up", "picks up")]  # "... 3 more."
LOSSES = [("give away", "gives away"), ("lose", "loses"), ("sell", "sells"), ("drop", "drops")]
MAX_VALUE = 20  # narratives keep every running total in [0, MAX_VALUE]
PATTERN_MAX = 99

ITEMS = ["key", "coin", "ring", "marble", "button", "pebble", "shell", "bead", "stamp", "letter", "spoon",
         "ribbon", "candle", "glove", "sock", "feather", "thimble", "acorn", "comb"]
CONTAINERS = ["cup", "box", "bag", "jar", "tin", "basket", "drawer", "chest", "crate", "trunk", "cupboard",
              "closet", "bucket", "barrel", "room", "shed", "barn", "house", "cabin", "wagon", "boat", "tent",
              "cellar", "attic", "pot", "sack", "vase", "bowl", "case", "safe"]

# Filler grammar.
ADJECTIVES = ["old", "small", "quiet", "bright", "tall", "busy", "cold", "warm", "narrow", "happy", "tired",
              "young", "dark", "gentle", "loud", "little", "wide", "calm", "heavy", "clever"]
AGENTS = ["dog", "cat", "bird", "fox", "rabbit", "mouse", "duck", "goat", "child", "girl", "boy", "sailor",
          "woman", "man", "traveller", "merchant", "farmer", "student", "king", "queen"]
PLACES = ["river", "hill", "market", "forest", "road", "garden", "village", "bridge", "field", "harbour",
          "tower", "square", "lake", "valley", "station", "castle"]
INTRANSITIVE = ["walked", "slept", "waited", "sang", "rested", "laughed", "ran", "stopped", "listened",
                "wandered", "danced", "sat"]
TRANSITIVE = ["saw", "followed", "found", "watched", "met", "called", "helped", "carried", "painted", "visited"]
PREPOSITIONS = ["near", "behind", "across", "beside", "under", "along", "past", "toward", "beyond", "around"]
TIMES = ["In the morning,", "After lunch,", "Later that day,", "At night,", "On a cold day,", "In the spring,",
         "Before dawn,", "One evening,"]

# Passage mix of a document (weights) and passages per document.
PASSAGE_WEIGHTS = {"knowledge": 0.40, "arithmetic": 0.22, "analogy": 0.08, "spatial": 0.16, "filler": 0.14}
# Roles and causes are few, so their mention weights fall faster (rank^-1.5) to keep rare ones rare.
ROLE_ZIPF_EXPONENT = 1.5
PASSAGES_PER_DOCUMENT = (2, 6)

# Question kinds within a family (weights), so each task mixes easy and hard questions.
ARITHMETIC_KINDS = {"1-step worked": 0.15, "1-step direct": 0.2, "2-step worked": 0.15, "2-step direct": 0.15,
                    "3-step direct": 0.1, "pattern": 0.25}
ANALOGY_KINDS = ("recipient", "thing", "place", "tool", "cause")
# Spatial levels (weights): hops from the queried object to the outermost container, the answer. Level 1 is
# a copy of a stated container and each level adds a hop to follow; many level-1 questions give an easy end.
SPATIAL_LEVELS = {1: 0.4, 2: 0.3, 3: 0.2, 4: 0.1}
MAX_LINKS = 4
# Every item and container has its usual places: a ranked list of containers, each link drawn with weight
# rank^-s. With uniformly random links a width-64 model still scored chance on every level after 4M tokens;
# with usual places it had learned to read the chains by then (measured for issue 11).
SPATIAL_ZIPF_EXPONENT = 1.5


def _rng(seed, stream):
    # String seeds hash through SHA-512 in `random`, so streams are independent and PYTHONHASHSEED-proof.
    return random.Random(f"t2scaling-world/v{VERSION}/{seed}/{stream}")


def _zipf_cum_weights(n, exponent):
    total, cum = 0.0, []
    for rank in range(1, n + 1):
        total += rank ** -exponent
        cum.append(total)
    return cum


def _article(word):
    return "an" if word[0] in "aeiou" else "a"


def _sentence_case(text):
    return text[0].upper() + text[1:]


class SyntheticWorld:
    """The lexicon of one seed plus generators of passages and questions.

    Held-out keys: after `questions()` draws the test questions of arithmetic/spatial/analogy, their keys
    are kept in `held_out` and corpus passages with the same key are redrawn.
    """

    def __init__(self, seed=0, n_entities=500, zipf_exponent=1.0):
        if n_entities < 2:
            raise ValueError(f"n_entities = {n_entities}: the world needs at least 2 countries")
        if zipf_exponent < 0:
            raise ValueError(f"zipf_exponent = {zipf_exponent}: must be >= 0 (0 mentions all countries equally)")
        self.seed = seed
        rng = _rng(seed, "lexicon")
        taken = {w.lower() for w in COLOURS + ANIMALS + EXPORTS + ITEMS + CONTAINERS + AGENTS + PLACES}
        self.countries = self._invent(rng, n_entities, (1, 2), ["ria", "nia", "land", "mor", "dor", "via", "sia"],
                                      taken)
        self.cities = self._invent(rng, n_entities, (1, 2), ["mar", "holm", "ford", "ton", "vale", "dun", "wick",
                                                              "bury", "grad", "heim"], taken)
        self.languages = self._invent(rng, 32, (2, 2), ["ish", "ic", "ese", "i", "an"], taken)
        self.people = self._invent(rng, PEOPLE_COUNT, (2, 2), ["n", "r", "l", "s", "a", "o", ""], taken)
        self.facts = {}  # (country index, attribute) -> value
        for i in range(n_entities):
            self.facts[i, "capital"] = self.cities[i]
            self.facts[i, "language"] = rng.choice(self.languages)
            self.facts[i, "flag"] = rng.choice(COLOURS)
            self.facts[i, "animal"] = rng.choice(ANIMALS)
            self.facts[i, "export"] = rng.choice(EXPORTS)
        # Countries are generated in Zipf-rank order (names are random, so rank is unrelated to the name).
        self.country_cum = _zipf_cum_weights(n_entities, zipf_exponent)
        self.role_order = rng.sample(range(len(ROLES)), len(ROLES))  # rank -> role
        self.cause_order = rng.sample(range(len(CAUSES)), len(CAUSES))
        self.role_cum = _zipf_cum_weights(len(ROLES), ROLE_ZIPF_EXPONENT)
        self.cause_cum = _zipf_cum_weights(len(CAUSES), ROLE_ZIPF_EXPONENT)
        self.held_out = {family: set() for family in FAMILIES}
        # Sentences that are the first half of an analogy (no final period) -> [(kind, role or cause)]; two of
        # them side by side in a document would be that analogy verbatim.
        self.analogy_halves = {}
        for kind in ANALOGY_KINDS:
            for i in range(len(CAUSES) if kind == "cause" else len(ROLES)):
                half = self._analogy(kind, i, i)[0].split(". ")[0]
                self.analogy_halves.setdefault(half, []).append((kind, i))
        places = _rng(seed, "places")  # its own stream: the lexicon above stays as it was
        self.item_places = [places.sample(range(len(CONTAINERS)), len(CONTAINERS)) for _ in ITEMS]
        self.container_places = [places.sample([c for c in range(len(CONTAINERS)) if c != box], len(CONTAINERS) - 1)
                                 for box in range(len(CONTAINERS))]
        self.place_cum = _zipf_cum_weights(len(CONTAINERS), SPATIAL_ZIPF_EXPONENT)
        self.mentions = {}  # (country index, attribute) -> statements in the train corpus
        self.counting = False  # on while the train corpus is generated
        self._stated = []  # facts stated in the document being drawn (counted once it is kept)

    @staticmethod
    def _invent(rng, n, syllables, suffixes, taken):
        onsets = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "r", "s", "st", "t",
                  "th", "tr", "v", "z", "sh", "qu", "j", "w"]
        vowels = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei", "ou"]
        names = []
        while len(names) < n:
            count = rng.randint(*syllables)
            stem = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(count))
            name = (stem + rng.choice(suffixes)).capitalize()
            if name.lower() not in taken:
                taken.add(name.lower())
                names.append(name)
        return names

    # -- knowledge ------------------------------------------------------------------------------------
    def fact_statement(self, rng, country, attribute, canonical=None):
        e, v = self.countries[country], self.facts[country, attribute]
        self._stated.append((country, attribute))
        if canonical is None:
            canonical = rng.random() < CANONICAL_SHARE
        if canonical:
            return KNOWLEDGE_PROMPTS[attribute].format(e=e) + f" {v}."
        return rng.choice(KNOWLEDGE_PARAPHRASES[attribute]).format(e=e, v=v)

    def knowledge_passage(self, rng):
        country = rng.choices(range(len(self.countries)), cum_weights=self.country_cum)[0]
        attributes = rng.sample(ATTRIBUTES, rng.randint(1, 3))
        sentences = [self.fact_statement(rng, country, a) for a in attributes]
        if rng.random() < 0.3:
            filler = rng.choice(COUNTRY_FILLER).format(e=self.countries[country])
            sentences.insert(rng.randint(0, len(sentences)), filler)
        return " ".join(sentences)

    def gazetteer_entry(self, rng, country):
        """Every fact of one country in canonical form: the guarantee that each fact is in the corpus."""
        self._stated = []
        text = " ".join(self.fact_statement(rng, country, a, canonical=True) for a in ATTRIBUTES)
        self._keep()
        return text

    def _keep(self):
        if self.counting:
            for fact in self._stated:
                self.mentions[fact] = self.mentions.get(fact, 0) + 1
        self._stated = []

    def primer_entries(self):
        """Every role fact and every cause in canonical form (the same guarantee for the analogy family)."""
        roles = [" ".join(self._role_sentence(r, relation) for relation in ("does", "place", "tool"))
                 for r in range(len(ROLES))]
        return roles + [f"{c} {m} {p} {e}." for c, m, p, e in CAUSES]  # one per document: no adjacent pairs

    # -- arithmetic -----------------------------------------------------------------------------------
    def _narrative(self, rng, n_steps):
        subject = "I" if rng.random() < 0.2 else rng.choice(self.people)
        obj = rng.randrange(len(OBJECTS))
        value = rng.randint(2, 15)
        start, steps = value, []
        for _ in range(n_steps):
            can_gain, can_lose = value < MAX_VALUE, value > 0
            gain = can_gain and (not can_lose or rng.random() < 0.5)
            amount = rng.randint(1, min(9, MAX_VALUE - value if gain else value))
            verb = rng.randrange(len(GAINS if gain else LOSSES))
            steps.append((1 if gain else -1, amount, verb))
            value += amount if gain else -amount
        return subject, obj, start, tuple(steps)

    @staticmethod
    def _narrative_key(narrative):
        subject, obj, start, steps = narrative
        return ("narrative", subject, obj, start, tuple((sign, amount) for sign, amount, _ in steps))

    @staticmethod
    def _render_narrative(narrative, worked, stop=None):
        """Full text, or the question prompt when stop is "direct" or "worked" (the answer is the total)."""
        subject, obj, start, steps = narrative
        first = subject == "I"
        singular, plural = OBJECTS[obj]
        parts = [f"{subject} {'have' if first else 'has'} {start} {plural}."]
        equations, value = [], start
        for i, (sign, amount, verb) in enumerate(steps):
            verb_form = (GAINS if sign > 0 else LOSSES)[verb][0 if first else 1]
            parts.append(f"{'Then ' if i else ''}{subject} {verb_form} {amount}{' more' if sign > 0 else ''}.")
            new = value + sign * amount
            equations.append(f"{value} {'plus' if sign > 0 else 'minus'} {amount} equals {new}.")
            value = new
        if stop == "worked":
            return " ".join(parts + equations[:-1] + [equations[-1].rsplit(" ", 1)[0]]), value
        if worked:
            parts += equations
        now = f"Now {subject} {'have' if first else 'has'}"
        if stop == "direct":
            return " ".join(parts + [now]), value
        return " ".join(parts + [f"{now} {value} {singular if value == 1 else plural}."]), value

    @staticmethod
    def _pattern(rng):
        step = rng.randint(1, 9)
        length = rng.randint(5, 8)
        if rng.random() < 0.5:
            return "up", step, rng.randint(0, PATTERN_MAX - step * (length - 1)), length
        return "down", step, rng.randint(step * (length - 1), PATTERN_MAX), length

    @staticmethod
    def _render_pattern(direction, step, start, length):
        sign = 1 if direction == "up" else -1
        terms = ", ".join(str(start + sign * step * i) for i in range(length))
        return f"Counting {'down ' if direction == 'down' else ''}by {step}s: {terms}"

    def arithmetic_passage(self, rng):
        kind = rng.random()
        if kind < 0.6:
            while True:
                narrative = self._narrative(rng, rng.choices((1, 2, 3), weights=(0.4, 0.35, 0.25))[0])
                if self._narrative_key(narrative) not in self.held_out["arithmetic"]:
                    return self._render_narrative(narrative, worked=rng.random() < 0.5)[0]
        if kind < 0.8:
            equations = []
            for _ in range(rng.randint(3, 6)):
                a = rng.randint(0, MAX_VALUE)
                if rng.random() < 0.5:
                    b = rng.randint(0, MAX_VALUE - a)
                    equations.append(f"{a} plus {b} equals {a + b}.")
                else:
                    b = rng.randint(0, a)
                    equations.append(f"{a} minus {b} equals {a - b}.")
            return " ".join(equations)
        while True:
            direction, step, start, length = self._pattern(rng)
            if ("pattern", direction, step, start) not in self.held_out["arithmetic"]:
                return self._render_pattern(direction, step, start, length) + "."

    def arithmetic_question(self, rng):
        """(key, kind, prompt, answer)."""
        kind = rng.choices(list(ARITHMETIC_KINDS), weights=list(ARITHMETIC_KINDS.values()))[0]
        if kind == "pattern":
            direction, step, start, length = self._pattern(rng)
            shown = rng.randint(3, 5)
            sign = 1 if direction == "up" else -1
            prompt = self._render_pattern(direction, step, start, shown) + ","
            return ("pattern", direction, step, start), kind, prompt, f" {start + sign * step * shown}"
        n_steps, form = int(kind[0]), kind.split()[1]
        narrative = self._narrative(rng, n_steps)
        prompt, total = self._render_narrative(narrative, worked=form == "worked", stop=form)
        return self._narrative_key(narrative), kind, prompt, f" {total}"

    # -- analogy --------------------------------------------------------------------------------------
    @staticmethod
    def _role_sentence(role, relation, plural=True):
        singular, plurals, verb_pl, verb_sg, thing, prep, recipients, place, tool = ROLES[role]
        if relation == "does":
            if plural:
                return f"{_sentence_case(plurals)} {verb_pl} {thing} {prep} {recipients}."
            return f"{_sentence_case(_article(singular))} {singular} {verb_sg} {thing} {prep} {recipients}."
        if relation == "place":
            return f"The {singular} works in the {place}."
        return f"The {singular} works with the {tool}."

    def _role_statement(self, rng, role, relation):
        singular, _, _, verb_sg, thing, prep, recipients, place, tool = ROLES[role]
        variant = rng.random()
        if variant < 0.5:
            return self._role_sentence(role, relation, plural=True)
        if relation == "does":
            if variant < 0.75:
                return self._role_sentence(role, relation, plural=False)
            return f"Every day, the {singular} {verb_sg} {thing} {prep} the {recipients}."
        if relation == "place":
            return rng.choice([f"Every morning the {singular} goes to the {place}.",
                               f"You can find the {singular} in the {place}."])
        return rng.choice([f"The {singular} never goes to work without the {tool}.",
                           f"The {singular} picked up the {tool}."])

    @staticmethod
    def _cause_statement(rng, cause):
        name, makes, patient, effect = CAUSES[cause]
        lead = rng.choice(["", "", "Everyone knows that ", "It is known that ", "We learned that "])
        return f"{lead}{name if not lead else name.lower()} {makes} {patient} {effect}."

    @staticmethod
    def _analogy(kind, a, b):
        """(prompt, answer, rest) of one analogy: the relation of a, then b's with a blank; rest ends the text."""
        if kind == "cause":
            (ca, ma, pa, ea), (cb, mb, pb, eb) = CAUSES[a], CAUSES[b]
            return f"{ca} {ma} {pa} {ea}. {cb} {mb} {pb}", f" {eb}", "."
        ra, rb = ROLES[a], ROLES[b]
        first = f"{_sentence_case(ra[1])} {ra[2]} {ra[4]} {ra[5]} {ra[6]}. {_sentence_case(rb[1])} {rb[2]}"
        if kind == "recipient":
            return f"{first} {rb[4]} {rb[5]}", f" {rb[6]}", "."
        if kind == "thing":
            return first, f" {rb[4]}", f" {rb[5]} {rb[6]}."
        if kind == "place":
            return f"The {ra[0]} works in the {ra[7]}. The {rb[0]} works in the", f" {rb[7]}", "."
        return f"The {ra[0]} works with the {ra[8]}. The {rb[0]} works with the", f" {rb[8]}", "."

    def _draw(self, rng, kind, zipf):
        """A role (or a cause for kind "cause"): by mention rank when zipf, else uniformly."""
        order, cum = (self.cause_order, self.cause_cum) if kind == "cause" else (self.role_order, self.role_cum)
        return order[rng.choices(range(len(order)), cum_weights=cum)[0]] if zipf else rng.randrange(len(order))

    def _draw_pair(self, rng, kind, zipf):
        a = self._draw(rng, kind, zipf)
        while (b := self._draw(rng, kind, zipf)) == a:
            pass
        return a, b

    def analogy_passage(self, rng):
        kind = rng.random()
        if kind < 0.5:
            role = self._draw(rng, "role", zipf=True)
            relations = rng.sample(("does", "place", "tool"), rng.randint(1, 3))
            return " ".join(self._role_statement(rng, role, r) for r in relations)
        if kind < 0.8:
            while True:
                analogy_kind = rng.choice(ANALOGY_KINDS)
                a, b = self._draw_pair(rng, analogy_kind, zipf=True)
                if (analogy_kind, a, b) not in self.held_out["analogy"]:
                    return "".join(self._analogy(analogy_kind, a, b))
        causes = list(dict.fromkeys(self._draw(rng, "cause", zipf=True) for _ in range(rng.randint(1, 3))))
        return " ".join(self._cause_statement(rng, c) for c in causes)

    def analogy_question(self, rng):
        """Pairs drawn uniformly, so the test spans frequent and rare roles alike."""
        kind = rng.choice(ANALOGY_KINDS)
        a, b = self._draw_pair(rng, kind, zipf=False)
        prompt, answer, _ = self._analogy(kind, a, b)
        return (kind, a, b), kind, prompt, answer

    # -- spatial --------------------------------------------------------------------------------------
    @staticmethod
    def _spatial_level(rng):
        return rng.choices(list(SPATIAL_LEVELS), weights=list(SPATIAL_LEVELS.values()))[0]

    def _chain(self, rng, level):
        """An item inside nested containers, statement order, distractor, and the queried position.

        The chain has `level` or `level` + 1 links (at most MAX_LINKS), each to one of the holder's usual
        places, and the question asks from `level` links below the outermost container, always the answer.
        """
        n_links = rng.randint(level, min(level + 1, MAX_LINKS))
        chain = (rng.randrange(len(ITEMS)),)
        places = self.item_places[chain[0]]
        while len(chain) <= n_links:
            box = rng.choices(places, cum_weights=self.place_cum[:len(places)])[0]
            if box not in chain[1:]:
                chain += (box,)
                places = self.container_places[box]
        order = list(range(n_links))
        rng.shuffle(order)  # any order: always inner-to-outer would give the answer away as the last container
        distractor = None
        if rng.random() < 0.35:
            item = rng.choice([i for i in range(len(ITEMS)) if i != chain[0]])
            box = rng.choice([c for c in range(len(CONTAINERS)) if c not in chain[1:]])
            distractor = (rng.randint(0, n_links), item, box)  # (position among the statements, item, container)
        return chain, tuple(order), distractor, n_links - level

    @staticmethod
    def _render_chain(chain, order, distractor, query):
        names = [ITEMS[chain[0]]] + [CONTAINERS[c] for c in chain[1:]]
        statements = [f"The {names[i]} is in the {names[i + 1]}." for i in order]
        if distractor is not None:
            position, item, box = distractor
            statements.insert(position, f"The {ITEMS[item]} is in the {CONTAINERS[box]}.")
        return " ".join(statements) + f" So the {names[query]} is in the", f" {names[-1]}"

    def spatial_passage(self, rng):
        while True:
            chain, order, distractor, query = self._chain(rng, self._spatial_level(rng))
            if chain not in self.held_out["spatial"]:  # the whole chain, whichever object a test asks about
                prompt, answer = self._render_chain(chain, order, distractor, query)
                return prompt + answer + "."

    def spatial_question(self, rng, seen=()):
        # Redraw a chain already asked within its level: usual places repeat, and a fresh level per redraw
        # would tilt the mix toward the long chains, which repeat least. (A level that runs out of new chains
        # returns a repeat, which the caller skips.)
        level = self._spatial_level(rng)
        for _ in range(100):
            chain, order, distractor, query = self._chain(rng, level)
            if chain not in seen:
                break
        prompt, answer = self._render_chain(chain, order, distractor, query)
        n_links = len(chain) - 1
        kind = f"{n_links - query}-hop {n_links}-link {'shuffled' if order != tuple(sorted(order)) else 'ordered'}"
        return chain, kind + (" distractor" if distractor else ""), prompt, answer

    # -- filler ---------------------------------------------------------------------------------------
    def _noun_phrase(self, rng, nouns):
        adjective = rng.choice(ADJECTIVES) + " " if rng.random() < 0.5 else ""
        return f"the {adjective}{rng.choice(nouns)}"

    def filler_sentence(self, rng):
        shape = rng.random()
        time_phrase = rng.choice(TIMES) + " " if rng.random() < 0.3 else ""
        subject = self._noun_phrase(rng, AGENTS)
        if shape < 0.4:
            body = f"{subject} {rng.choice(INTRANSITIVE)} {rng.choice(PREPOSITIONS)} {self._noun_phrase(rng, PLACES)}."
        elif shape < 0.8:
            body = f"{subject} {rng.choice(TRANSITIVE)} {self._noun_phrase(rng, AGENTS)}."
        elif shape < 0.9:
            body = f"it was a {rng.choice(ADJECTIVES)} day in {rng.choice(self.cities)}."
        else:
            body = f"{subject} {rng.choice(INTRANSITIVE)} on the road to {rng.choice(self.cities)}."
        return _sentence_case(time_phrase + body)

    def filler_passage(self, rng):
        return " ".join(self.filler_sentence(rng) for _ in range(rng.randint(2, 4)))

    # -- documents and questions ----------------------------------------------------------------------
    def document(self, rng):
        while True:
            self._stated = []
            kinds = rng.choices(list(PASSAGE_WEIGHTS), weights=list(PASSAGE_WEIGHTS.values()),
                                k=rng.randint(*PASSAGES_PER_DOCUMENT))
            text = " ".join(getattr(self, f"{kind}_passage")(rng) for kind in kinds)
            if not self._has_held_out_analogy(text):
                self._keep()
                return text

    def _has_held_out_analogy(self, text):
        """Whether two adjacent sentences (e.g. two role facts from neighbouring passages) form a test analogy."""
        held_out = self.held_out["analogy"]
        if not held_out:
            return False
        previous = []
        for sentence in text.removesuffix(".").split(". "):
            current = self.analogy_halves.get(sentence, [])
            if any((k1, a, b) in held_out for k1, a in previous for k2, b in current if k1 == k2):
                return True
            previous = current
        return False

    def questions(self, family, n_test, n_train):
        """Rows for one family: n_test "test" rows, then n_train "train" rows with distinct keys.

        Test keys of arithmetic/analogy/spatial go to `held_out` (call before generating the corpus).
        """
        rng = _rng(self.seed, f"questions/{family}")
        rows = []
        if family == "knowledge":
            facts = list(self.facts)
            if n_test + n_train > len(facts):
                raise ValueError(f"knowledge: {n_test} test + {n_train} train questions need that many distinct facts "
                                 f"but the world has {len(facts)} ({len(self.countries)} countries x "
                                 f"{len(ATTRIBUTES)} attributes); raise n_entities or lower the question counts")
            rng.shuffle(facts)
            for country, attribute in facts[:n_test + n_train]:
                prompt = KNOWLEDGE_PROMPTS[attribute].format(e=self.countries[country])
                rows.append({"prompt": prompt, "answer": f" {self.facts[country, attribute]}", "kind": attribute,
                             "fact": (country, attribute)})
        else:
            seen, attempts = set(), 0
            draw = getattr(self, f"{family}_question")
            if family == "spatial":
                draw = functools.partial(draw, seen=seen)
            while len(rows) < n_test + n_train:
                key, kind, prompt, answer = draw(rng)
                attempts += 1
                if attempts > 50 * (n_test + n_train) + 1000:
                    raise ValueError(f"{family}: could not draw {n_test + n_train} distinct questions "
                                     f"(got {len(rows)}); lower the question counts")
                if key in seen:
                    continue
                seen.add(key)
                rows.append({"prompt": prompt, "answer": answer, "kind": kind})
                if len(rows) <= n_test:
                    self.held_out[family].add(key)
        for i, row in enumerate(rows):
            split = "test" if i < n_test else "train"
            row.update(id=f"{family}-{split}-{i if i < n_test else i - n_test:05d}", split=split)
        return rows


# ---------------------------------------------------------------------------------------------------------
# Writing.

def _write_atomic(path, lines):
    """Write lines to path through a temp file in the same folder; return the sha256 of the bytes."""
    digest = hashlib.sha256()
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        for line in lines:
            data = (line + "\n").encode("utf-8")
            digest.update(data)
            f.write(data)
    return digest.hexdigest()


def write_world(out_dir, *, seed=0, n_questions=1000, n_train_questions=1000, n_entities=500,
                n_documents=28000, val_fraction=0.02, zipf_exponent=1.0):
    """Generate the world into out_dir and return its summary (also written to world.json).

    Files: corpus/train.jsonl, corpus/val.jsonl ({"text": document} per line); tasks/{family}.jsonl with rows
    {"id", "prompt", "answer", "split", "kind"} (knowledge rows add "mentions": statements of the fact in the
    train corpus); world.json (parameters, counts and sha256 of every file). n_documents counts the train
    and val documents drawn from the passage mix; the train corpus also gets one gazetteer document per
    country, one per role and one listing the causes. Same arguments -> byte-identical files.
    """
    if n_questions < 1 or n_train_questions < 0:
        raise ValueError(f"n_questions = {n_questions}, n_train_questions = {n_train_questions}: need >= 1 and >= 0")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction = {val_fraction}: must lie strictly between 0 and 1")
    n_val = max(1, round(n_documents * val_fraction))
    if n_documents - n_val < 1:
        raise ValueError(f"n_documents = {n_documents} leaves no train documents at val_fraction = {val_fraction}")
    started = time.perf_counter()
    world = SyntheticWorld(seed, n_entities, zipf_exponent)
    tasks = {family: world.questions(family, n_questions, n_train_questions) for family in FAMILIES}

    rng = _rng(seed, "corpus/train")
    world.counting = True
    train = [world.document(rng) for _ in range(n_documents - n_val)]
    train += [world.gazetteer_entry(rng, country) for country in range(n_entities)] + world.primer_entries()
    rng.shuffle(train)
    world.counting = False
    rng = _rng(seed, "corpus/val")
    val = [world.document(rng) for _ in range(n_val)]
    logger.info("world seed %d: %d train + %d val documents, %d questions per family in %.1f s",
                seed, len(train), len(val), n_questions, time.perf_counter() - started)

    for row in tasks["knowledge"]:
        row["mentions"] = world.mentions[row.pop("fact")]
    files = {}
    for name, docs in (("train", train), ("val", val)):
        files[f"corpus/{name}.jsonl"] = _write_atomic(
            os.path.join(out_dir, "corpus", f"{name}.jsonl"), (json.dumps({"text": d}) for d in docs))
    columns = ("id", "prompt", "answer", "split", "kind", "mentions")
    for family, rows in tasks.items():
        files[f"tasks/{family}.jsonl"] = _write_atomic(
            os.path.join(out_dir, "tasks", f"{family}.jsonl"),
            (json.dumps({c: row[c] for c in columns if c in row}) for row in rows))
    summary = {
        "generator": f"t2scaling.world v{VERSION}",
        "seed": seed,
        "parameters": {"n_questions": n_questions, "n_train_questions": n_train_questions,
                       "n_entities": n_entities, "n_documents": n_documents, "val_fraction": val_fraction,
                       "zipf_exponent": zipf_exponent},
        "counts": {"train_documents": len(train), "val_documents": len(val),
                   "train_characters": sum(map(len, train)), "val_characters": sum(map(len, val)),
                   "facts": len(world.facts),
                   "questions": {f: {s: sum(r["split"] == s for r in rows) for s in ("test", "train")}
                                 for f, rows in tasks.items()}},
        "files": files,
    }
    _write_atomic(os.path.join(out_dir, "world.json"), [json.dumps(summary, indent=2)])
    logger.info("wrote the world to %s (%d train characters) in %.1f s", out_dir,
                summary["counts"]["train_characters"], time.perf_counter() - started)
    return summary


def write_configured_world(world, world_json):
    """Rule world: `write_world` as the config's `world` section says ({seed, questions, train_questions, options:
    further write_world keywords}), into the directory of world_json (world.json; corpus/ and tasks/ beside it);
    returns the summary."""
    return write_world(os.path.dirname(os.fspath(world_json)) or ".", seed=world["seed"],
                       n_questions=world["questions"], n_train_questions=world["train_questions"],
                       **world["options"])


# ---------------------------------------------------------------------------------------------------------
