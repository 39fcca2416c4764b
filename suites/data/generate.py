"""Writes the suites' generated data: sentiment, news highlights, entities, questions and shapes
(run once; the output is committed).

    python suites/data/generate.py

Every sentence comes from the templates below, written for this project (CC0). A fixed seed makes the
files reproducible. Evaluation files are not templated copies of the training files: most of their
examples bring phrases, names, wordings or sentence orders that never occur there (the rest are new
only in their values and pairings), so a model that memorised its training lines scores clearly below
1.0 on them, and a damaged one lower still.
"""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

# --- sentiment (label 1 = positive, 0 = negative) ---------------------------------------------------
SUBJECTS = [
    "the film", "this movie", "the plot", "the acting", "the soundtrack", "the ending", "the script",
    "the cast", "the cinematography", "the dialogue", "the lead performance", "the direction",
    "the story", "the second half", "the opening scene", "the pacing", "the humour", "the sequel",
    "the documentary", "the animation",
]
POSITIVE = [
    "is a delight", "was wonderful", "felt fresh and moving", "is beautifully made", "kept me gripped",
    "is a triumph", "left me smiling", "is clever and warm", "works brilliantly", "is pure joy",
    "was genuinely funny", "is stunning", "felt honest and touching", "is a real treat",
    "was excellent", "is charming from start to finish", "won me over", "is smart and gripping",
    "was a pleasure to watch", "is full of heart", "deserves every award", "was superb",
]
NEGATIVE = [
    "is a mess", "was dull", "felt stale and lifeless", "is badly made", "bored me to tears",
    "is a disaster", "left me cold", "is clumsy and tiresome", "falls flat", "is a chore",
    "was painfully unfunny", "is ugly", "felt fake and hollow", "is a waste of time", "was awful",
    "is tedious from start to finish", "lost me early", "is dumb and predictable",
    "was a pain to sit through", "has no heart at all", "deserves to be forgotten", "was terrible",
]
NEGATED = {  # "was not good" is negative, "was not bad at all" positive: the model must read "not"
    1: ["was not bad at all", "is not boring for a second", "was never dull"],
    0: ["was not good", "is not worth your time", "was not funny at all"],
}
OPENERS = ["", "", "honestly, ", "in the end, ", "overall, ", "to be fair, ", "I think "]
CLOSERS = {
    1: ["", "", " and I would recommend it", " and I would happily watch it again", " ."],
    0: ["", "", " and I would not recommend it", " and I want my money back", " ."],
}


def sentiment(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """Training sentences, and 1,000 evaluation sentences of three kinds (see :func:`sentiment_eval`)."""
    pairs = [(s, p, 1) for s in SUBJECTS for p in POSITIVE] + [(s, p, 0) for s in SUBJECTS for p in NEGATIVE]
    pairs += [(s, p, label) for s in SUBJECTS for label, phrases in NEGATED.items() for p in phrases]
    rng.shuffle(pairs)
    cut = len(pairs) * 3 // 4
    train = [_sentence(rng, *rng.choice(pairs[:cut])) for _ in range(2000)]
    return train, sentiment_eval(rng, pairs[cut:], 1000)


def _sentence(rng: random.Random, subject: str, predicate: str, label: int) -> dict:
    text = f"{rng.choice(OPENERS)}{subject} {predicate}{rng.choice(CLOSERS[label])}".strip()
    return {"text": text[0].upper() + text[1:], "label": label}


# Evaluation phrases: never in training, made of words training uses in other combinations (and a few
# it never saw). Their own lists, so the pruning sweep's held-out set below stays independent of them.
EVAL_PHRASES = {
    1: ["is a warm delight", "was clever and funny", "felt moving and fresh", "kept me gripped to the end",
        "is a smart treat", "was a joy to watch", "is honest and charming", "was not a waste of time",
        "is a gem", "won the whole room over"],
    0: ["is a clumsy bore", "was stale and dull", "felt lifeless and fake", "is predictable from start to finish",
        "left me tired", "was a tedious mess", "is a hollow chore", "was not worth it at all",
        "is a dud", "lost the whole room early"],
}
#: Two-clause sentences in which the second clause decides ("the plot falls flat, yet the cast was superb").
CONTRASTS = [", but ", ", yet ", ", although ", ", even though "]


def sentiment_eval(rng: random.Random, unseen_pairs: list[tuple[str, str, int]], count: int) -> list[dict]:
    """Evaluation sentences, a third of each kind: subject-phrase pairs that never occur in training (the
    easy part: a model that learnt the phrases gets them); phrases never seen in training; and two
    clauses of opposite sentiment in which the one after "but"/"yet" decides, or, after "although", the
    first. A fallback that memorised its training phrases gets the first kind right and many of the
    others wrong, so its accuracy sits clearly below 1.0 and a damaged model shows."""
    rows = []
    for index in range(count):
        kind, label = index % 3, (index // 3) % 2
        if kind == 0:
            subject, predicate, label = rng.choice(unseen_pairs)
            rows.append(_sentence(rng, subject, predicate, label))
            continue
        subject = rng.choice(SUBJECTS)
        if kind == 1:
            text = f"{rng.choice(OPENERS)}{subject} {rng.choice(EVAL_PHRASES[label])}"
        else:
            joint = rng.choice(CONTRASTS)
            deciding = f"{rng.choice(SUBJECTS)} {rng.choice(EVAL_PHRASES[label] + (POSITIVE if label else NEGATIVE))}"
            other = f"{subject} {rng.choice(NEGATIVE if label else POSITIVE)}"
            # "although" concedes the clause after it: the clause before decides.
            text = f"{deciding}{joint}{other}" if "though" in joint else f"{other}{joint}{deciding}"
        rows.append({"text": text[0].upper() + text[1:], "label": label})
    rng.shuffle(rows)
    return rows


# Held out from training altogether: new phrases made of words the training phrases use in other
# combinations, and two-clause sentences whose second clause decides. A model that memorised the
# training phrases misreads many of these, so its accuracy on them sits below 1.0, and pruning shows.
HELDOUT = {
    1: ["is a joy", "was brilliant", "felt warm and clever", "is wonderful from start to finish",
        "kept me smiling", "was funny and touching", "is a fresh delight", "was not tedious at all"],
    0: ["is a dull mess", "was tiresome", "felt hollow and stale", "is awful from start to finish",
        "left me bored", "was ugly and clumsy", "is a lifeless chore", "was not clever at all"],
}


def heldout_sentiment(rng: random.Random, count: int) -> list[dict]:
    """Evaluation sentences for the pruning sweep (see HELDOUT)."""
    rows = []
    for index in range(count):
        label = index % 2
        subject = rng.choice(SUBJECTS)
        if index % 3 == 2:  # "the plot was dull, but the acting was superb": the second clause decides
            first = rng.choice(NEGATIVE if label else POSITIVE)
            text = f"{subject} {first}, but {rng.choice(SUBJECTS)} {rng.choice(HELDOUT[label])}"
        else:
            text = f"{rng.choice(OPENERS)}{subject} {rng.choice(HELDOUT[label])}"
        rows.append({"text": text[0].upper() + text[1:], "label": label})
    rng.shuffle(rows)
    return rows


# --- news highlights --------------------------------------------------------------------------------
CITIES = ["Riverton", "Millbrook", "Ashford", "Lakeside", "Kingsport", "Fairview", "Oakham", "Brightwater",
          "Stonebridge", "Eastwood", "Harrow", "Westfield", "Northgate", "Redcliff", "Greenhill", "Bayview"]
PROJECTS = ["a new bridge", "a public library", "a bus station", "a cycle lane", "a swimming pool",
            "a housing estate", "a school extension", "a solar farm", "a concert hall", "a city park"]
TEAMS = ["Riverton Rovers", "Ashford United", "Kingsport City", "Harrow Athletic", "Oakham Town",
         "Bayview Wanderers", "Redcliff Rangers", "Eastwood Albion"]
PLAYERS = ["Sam Okafor", "Lena Brandt", "Tom Reyes", "Mia Kowalski", "Jon Park", "Ada Novak", "Luis Mendes"]
COMPANIES = ["Northwind", "Bluepeak", "Solara", "Corvex", "Tidewell", "Granite Labs", "Mapleway"]
SECTORS = ["software", "energy", "shipping", "food", "retail", "medical"]
PEOPLE = ["Maria Chen", "David Osei", "Priya Nair", "Henry Walsh", "Sofia Rossi", "Omar Haddad"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FINDINGS = ["walking after meals lowers blood sugar", "short naps improve memory",
            "reading aloud helps children learn words", "cold water swimming lifts mood",
            "music lessons improve attention", "eating breakfast helps students focus"]
FILLER = [
    "The announcement was made at a press conference.", "Local radio covered the news all day.",
    "More details are expected next week.", "The weather was mild for the time of year.",
    "A spokesperson declined to comment further.", "Officials thanked everyone involved.",
    "The story was widely shared online.", "Similar news was reported in other towns.",
]


#: Names evaluation articles add to the ones above: never in the training articles, so the summariser
#: must copy words it has not learnt (its tokenizer spells them in pieces).
EVAL_NAMES = {
    "cities": ["Thornbury", "Quillhaven", "Marwick", "Penhallow", "Dunsford", "Yarrowby"],
    "teams": ["Thornbury Harriers", "Marwick Swifts", "Quillhaven Vale", "Yarrowby Celtic"],
    "players": ["Ines Varga", "Kofi Mensah", "Rhea Sato", "Bram Dekker"],
    "companies": ["Halcyra", "Vantorro", "Quenby", "Ostrava Works"],
    "people": ["Nadia Petrov", "Ewan Fairley", "Tomas Lindqvist", "Chiara Bellini"],
}
TRAIN_NAMES = {"cities": CITIES, "teams": TEAMS, "players": PLAYERS, "companies": COMPANIES, "people": PEOPLE}


def _council(rng: random.Random, names: dict[str, list[str]], reworded: bool) -> tuple[str, list[str], str]:
    city, project, person = rng.choice(names["cities"]), rng.choice(PROJECTS), rng.choice(names["people"])
    cost, day, year = rng.randint(2, 90), rng.choice(DAYS), rng.randint(2027, 2032)
    lead = (f"On {day}, councillors in {city} gave the go-ahead to {project}, at a cost of {cost} million dollars."
            if reworded else f"The {city} city council voted on {day} to approve {project} costing {cost} million dollars.")
    rest = [f"Work on {project} is expected to finish in {year}.",
            f"Mayor {person} said it would help families across {city}.",
            "Some residents raised concerns about traffic during construction."]
    return lead, rest, f"{city} council approves {project} costing {cost} million dollars."


def _match(rng: random.Random, names: dict[str, list[str]], reworded: bool) -> tuple[str, list[str], str]:
    home, away = rng.sample(names["teams"], 2)
    player, goals, day = rng.choice(names["players"]), rng.randint(1, 3), rng.choice(DAYS)
    score = f"{goals + rng.randint(0, 2)}-{rng.randint(0, goals - 1) if goals > 1 else 0}"
    lead = (f"A full stadium watched {away} lose {score} to {home} on {day}." if reworded
            else f"{home} beat {away} {score} on {day} in front of a full stadium.")
    rest = [f"{player} scored {goals} {'goal' if goals == 1 else 'goals'} for {home}.",
            f"The coach of {away} said his players were tired.",
            f"The win lifts {home} up the league table."]
    return lead, rest, f"{home} beat {away} {score} as {player} scores {goals}."


def _profit(rng: random.Random, names: dict[str, list[str]], reworded: bool) -> tuple[str, list[str], str]:
    company, sector, city = rng.choice(names["companies"]), rng.choice(SECTORS), rng.choice(names["cities"])
    amount, share, person = rng.randint(5, 400), rng.randint(2, 15), rng.choice(names["people"])
    lead = (f"Profits at {company}, a {sector} firm from {city}, reached {amount} million dollars." if reworded
            else f"{company}, the {sector} company based in {city}, reported a profit of {amount} million dollars.")
    rest = [f"Its shares rose {share} percent after the report.",
            f"Chief executive {person} said demand had been strong.",
            "Analysts had expected a smaller result."]
    return lead, rest, f"{company} reports {amount} million dollar profit and shares rise {share} percent."


def _storm(rng: random.Random, names: dict[str, list[str]], reworded: bool) -> tuple[str, list[str], str]:
    city, rain, schools, day = rng.choice(names["cities"]), rng.randint(3, 40), rng.randint(2, 30), rng.choice(DAYS)
    lead = (f"{city} was hit on {day} by a storm that dropped {rain} centimetres of rain." if reworded
            else f"A storm brought {rain} centimetres of rain to {city} on {day}.")
    rest = [f"{schools} schools were closed as roads flooded.",
            "Forecasters expect drier weather later in the week.",
            f"Emergency teams in {city} worked through the night."]
    return lead, rest, f"Storm brings {rain} centimetres of rain to {city} and closes {schools} schools."


def _study(rng: random.Random, names: dict[str, list[str]], reworded: bool) -> tuple[str, list[str], str]:
    city, finding, people = rng.choice(names["cities"]), rng.choice(FINDINGS), rng.randint(40, 900)
    lead = (f"A study from the University of {city} suggests that {finding}." if reworded
            else f"Researchers at the University of {city} say that {finding}.")
    rest = [f"The study followed {people} volunteers for a year.",
            "The team plans a larger trial next year.",
            "Other scientists said the results were encouraging."]
    return lead, rest, f"University of {city} study of {people} volunteers finds {finding}."


STORIES = [_council, _match, _profit, _storm, _study]


def highlights(rng: random.Random, count: int) -> list[dict]:
    """Training articles: the lead sentence first, then three details and two fillers in random order."""
    rows = []
    for index in range(count):
        lead, rest, summary = STORIES[index % len(STORIES)](rng, TRAIN_NAMES, False)
        rest = rest + rng.sample(FILLER, 2)
        rng.shuffle(rest)
        rows.append({"document": " ".join([lead, *rest]), "summary": summary})
    rng.shuffle(rows)
    return rows


def highlights_eval(rng: random.Random, count: int) -> list[dict]:
    """Evaluation articles, not templated copies of training ones: names drawn from the training names and
    :data:`EVAL_NAMES` together; a third with the lead reworded (the summary says the same facts), a
    third with the lead after one or two other sentences, a third as in training."""
    names = {kind: TRAIN_NAMES[kind] + EVAL_NAMES[kind] for kind in TRAIN_NAMES}
    rows = []
    for index in range(count):
        kind = index // len(STORIES) % 3
        lead, rest, summary = STORIES[index % len(STORIES)](rng, names, kind == 1)
        rest = rest + rng.sample(FILLER, 2)
        rng.shuffle(rest)
        at = rng.randint(1, 2) if kind == 2 else 0
        rows.append({"document": " ".join([*rest[:at], lead, *rest[at:]]), "summary": summary})
    rng.shuffle(rows)
    return rows


# --- named entities (IOB2 tags: PER, LOC, ORG) -------------------------------------------------------
# Names are made of syllables, so most occur once or twice and a model must find entities from the words
# around them. Evaluation names mix in syllables and endings never seen in training (held-out
# vocabulary), and a third of the evaluation sentences come from templates never seen in training.
_SEEN = ["ka", "lo", "ri", "men", "da", "vo", "sen", "tar", "bel", "mi", "no", "ras"]
SYLLABLES = {"train": _SEEN, "eval": _SEEN[:6] + ["zef", "yor", "pim", "wub"]}
PLACE_ENDS = {"train": ["ton", "ford", "ham", "field"], "eval": ["ton", "ham", "by", "wick"]}
ORG_ENDS = {"train": ["Labs", "Energy", "Shipping", "Foods", "Trust", "Bank"],
            "eval": ["Labs", "Foods", "Bank", "Group", "Motors"]}
ENTITY_TEMPLATES = {
    "train": ["{PER} met {PER} in {LOC} on Monday .", "{PER} works for {ORG} in {LOC} .",
              "{ORG} opened a new office in {LOC} .", "Yesterday {PER} joined {ORG} as chief executive .",
              "The mayor of {LOC} , {PER} , thanked {ORG} .", "{ORG} and {ORG} signed a deal in {LOC} .",
              "{PER} grew up in {LOC} before moving to {LOC} .", "Fans of {ORG} cheered for {PER} .",
              "A storm closed roads in {LOC} last week .", "{PER} said the plan would help families ."],
    "eval": ["In {LOC} , {PER} spoke to reporters about {ORG} .", "{ORG} hired {PER} after a long search .",
             "{PER} visited {LOC} and {LOC} this spring .", "Shares of {ORG} rose after {PER} spoke .",
             "Nobody in {LOC} expected the news ."],
}


def _word(rng: random.Random, split: str) -> str:
    return "".join(rng.choice(SYLLABLES[split]) for _ in range(rng.randint(2, 3))).capitalize()


def _entity(rng: random.Random, kind: str, split: str) -> list[str]:
    if kind == "PER":
        return [_word(rng, split), _word(rng, split)] if rng.random() < 0.7 else [_word(rng, split)]
    if kind == "LOC":
        return [_word(rng, split) + rng.choice(PLACE_ENDS[split])]
    return [_word(rng, split), rng.choice(ORG_ENDS[split])]


def _entity_sentence(rng: random.Random, template: str, split: str) -> dict:
    tokens: list[str] = []
    tags: list[str] = []
    for word in template.split():
        if word in ("{PER}", "{LOC}", "{ORG}"):
            kind = word[1:4]
            parts = _entity(rng, kind, split)
            tokens += parts
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(parts) - 1)
        else:
            tokens.append(word)
            tags.append("O")
    return {"tokens": tokens, "tags": tags}


def entities(rng: random.Random, split: str, count: int) -> list[dict]:
    templates = ENTITY_TEMPLATES["train"] + (ENTITY_TEMPLATES["eval"] if split == "eval" else [])
    return [_entity_sentence(rng, rng.choice(templates), split) for _ in range(count)]


# --- extractive questions over short news items ------------------------------------------------------
# Each story gives its context and (question, answer) pairs; the answer is a span of the context.
# Evaluation asks the same facts in other words (held-out question templates) about new stories.
QUESTIONS = {
    "cost": ("How much will {project} cost?", "What is the cost of {project}?"),
    "mayor": ("Who is the mayor of {city}?", "Which mayor spoke about the plan in {city}?"),
    "finish": ("When will work on {project} finish?", "In which year should {project} be finished?"),
    "scorer": ("Who scored for {home}?", "Which player found the net for {home}?"),
    "score": ("What was the score?", "How did the match between {home} and {away} end?"),
    "profit": ("How much profit did {company} report?", "What profit did {company} make?"),
    "chief": ("Who is the chief executive of {company}?", "Who leads {company}?"),
    "rain": ("How much rain fell in {city}?", "How much rain did the storm bring to {city}?"),
    "schools": ("How many schools were closed?", "How many schools shut because of the flooding?"),
    "volunteers": ("How many volunteers did the study follow?", "How many people took part in the study?"),
}


def _story(rng: random.Random, kind: int) -> tuple[str, dict[str, str], dict[str, str]]:
    """A context, its facts by question, and the names the questions mention."""
    if kind == 0:
        city, project, person = rng.choice(CITIES), rng.choice(PROJECTS), rng.choice(PEOPLE)
        cost, year = f"{rng.randint(2, 90)} million dollars", str(rng.randint(2027, 2032))
        context = (f"The {city} city council voted to approve {project} costing {cost}. Mayor {person} said it "
                   f"would help families. Work on {project} is expected to finish in {year}.")
        return context, {"cost": cost, "mayor": person, "finish": year}, {"project": project, "city": city}
    if kind == 1:
        home, away = rng.sample(TEAMS, 2)
        player, goals = rng.choice(PLAYERS), rng.randint(1, 3)
        score = f"{goals + rng.randint(0, 2)}-{rng.randint(0, goals - 1) if goals > 1 else 0}"
        context = (f"{home} beat {away} {score} in front of a full stadium. {player} scored "
                   f"{goals} {'goal' if goals == 1 else 'goals'} for {home}. The coach of {away} said his "
                   "players were tired.")
        return context, {"scorer": player, "score": score}, {"home": home, "away": away}
    if kind == 2:
        company, person = rng.choice(COMPANIES), rng.choice(PEOPLE)
        amount = f"{rng.randint(5, 400)} million dollars"
        context = (f"{company} reported a profit of {amount}. Its shares rose {rng.randint(2, 15)} percent. "
                   f"Chief executive {person} said demand had been strong.")
        return context, {"profit": amount, "chief": person}, {"company": company}
    if kind == 3:
        city, rain, schools = rng.choice(CITIES), f"{rng.randint(3, 40)} centimetres", str(rng.randint(2, 30))
        context = (f"A storm brought {rain} of rain to {city}. {schools} schools were closed as roads flooded. "
                   "Forecasters expect drier weather later in the week.")
        return context, {"rain": rain, "schools": schools}, {"city": city}
    city, finding, people = rng.choice(CITIES), rng.choice(FINDINGS), str(rng.randint(40, 900))
    context = (f"Researchers at the University of {city} say that {finding}. The study followed {people} "
               "volunteers for a year.")
    return context, {"volunteers": people}, {"city": city}


def questions(rng: random.Random, count: int, phrasing: int) -> list[dict]:
    rows = []
    while len(rows) < count:
        context, facts, names = _story(rng, len(rows) % 5)
        fact = rng.choice(sorted(facts))
        question = QUESTIONS[fact][phrasing].format(**names)
        rows.append({"question": question, "context": context, "answer": facts[fact]})
    rng.shuffle(rows)
    return rows


# --- shapes (16 x 16 RGB images as PNG data URIs) ----------------------------------------------------
SHAPES = ["circle", "square", "triangle", "cross"]
SIZE = 16


def _draw(rng: random.Random, shape: str, split: str) -> str:
    from PIL import Image, ImageDraw

    background = tuple(rng.randint(0, 90) for _ in range(3))
    # Evaluation shapes are drawn in colours of lower contrast than any in training.
    low, high = 6, 11
    base = rng.randint(170, 255) if split == "train" else rng.randint(145, 175)
    colour = tuple(min(255, base + rng.randint(-30, 30)) for _ in range(3))
    size = rng.randint(low, high)
    x, y = rng.randint(0, SIZE - size), rng.randint(0, SIZE - size)
    image = Image.new("RGB", (SIZE, SIZE), background)
    draw = ImageDraw.Draw(image)
    box = [x, y, x + size - 1, y + size - 1]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(x + size / 2, y), (x, y + size - 1), (x + size - 1, y + size - 1)], fill=colour)
    else:
        middle, arm = size // 2, max(1, size // 5)
        draw.rectangle([x, y + middle - arm, x + size - 1, y + middle + arm], fill=colour)
        draw.rectangle([x + middle - arm, y, x + middle + arm, y + size - 1], fill=colour)
    for _ in range(rng.randint(0, 6)):  # specks: the model must not read a single bright pixel as a shape
        image.putpixel((rng.randrange(SIZE), rng.randrange(SIZE)), colour)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def shapes(rng: random.Random, split: str, count: int) -> list[dict]:
    rows = [{"image": _draw(rng, SHAPES[i % len(SHAPES)], split), "label": SHAPES[i % len(SHAPES)]}
            for i in range(count)]
    rng.shuffle(rows)
    return rows


# --- text generation: a prompt and the sentence that follows it -------------------------------------
# Own word lists (the other data above may change without moving these files).
TOWNS = ["Alderley", "Brookfield", "Carrow", "Dunmere", "Elmstead", "Foxhollow", "Glenrock", "Hartwell",
         "Ivybridge", "Juniper Bay", "Kestrel Point", "Larkspur"]
SKIES = {"sunny": "bright sunshine", "rainy": "steady rain", "windy": "strong winds", "foggy": "thick fog",
         "snowy": "falling snow", "cloudy": "grey skies", "stormy": "thunder and lightning"}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
TRAINS = ["the early train", "the night bus", "the harbour ferry", "the airport shuttle", "the mountain railway"]
REASONS = ["a signal fault", "staff shortages", "flooding on the line", "a broken engine", "heavy snow"]


#: Towns the evaluation prompts add: never in training, so the continuation must copy a name the model
#: has not learnt.
EVAL_TOWNS = ["Mossgiel", "Quarrendon", "Tillyfourie", "Wenvoe"]


def _weather(rng: random.Random, towns: list[str], reworded: bool = False) -> dict:
    town, sky, day, degrees = rng.choice(towns), rng.choice(sorted(SKIES)), rng.choice(WEEKDAYS), rng.randint(2, 34)
    prompt = (f"{day} in {town} brings {sky} weather and a high of {degrees} degrees." if reworded
              else f"The forecast for {town} on {day} is {sky} with a high of {degrees} degrees.")
    return {"prompt": prompt, "continuation": f"People in {town} should expect {SKIES[sky]} for most of {day}."}


def _delay(rng: random.Random, towns: list[str], reworded: bool = False) -> dict:
    town, service, reason, minutes = rng.choice(towns), rng.choice(TRAINS), rng.choice(REASONS), rng.randint(5, 90)
    prompt = (f"Because of {reason}, {service} in {town} ran {minutes} minutes late." if reworded
              else f"In {town}, {service} was {minutes} minutes late because of {reason}.")
    return {"prompt": prompt, "continuation": f"The operator apologised and said {reason} had been fixed."}


def prompts(rng: random.Random, count: int) -> list[dict]:
    """Training prompt/continuation pairs, forecasts and delays in turn."""
    return [(_weather if index % 2 == 0 else _delay)(rng, TOWNS) for index in range(count)]


def prompts_eval(rng: random.Random, count: int, seen: set[str]) -> list[dict]:
    """Evaluation pairs, not templated copies of training ones: towns drawn from the training towns and
    :data:`EVAL_TOWNS` together, every third prompt reworded (its continuation says the same), and no
    prompt that occurs in ``seen`` (drawn again)."""
    rows: list[dict] = []
    while len(rows) < count:
        kind = _weather if len(rows) % 2 == 0 else _delay
        row = kind(rng, TOWNS + EVAL_TOWNS, reworded=len(rows) % 3 == 2)
        if row["prompt"] not in seen:
            rows.append(row)
    return rows


def write(name: str, rows: list[dict]) -> None:
    with open(HERE / name, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    rng = random.Random(20261123)
    train, evaluation = sentiment(rng)
    write("sentiment_train.jsonl", train)
    write("sentiment_eval.jsonl", evaluation)
    write("sentiment_heldout.jsonl", heldout_sentiment(random.Random(9), 600))
    # The highlights split by story, not by phrase: numbers and name pairings are new in evaluation.
    write("highlights_train.jsonl", highlights(random.Random(1), 1200))
    write("highlights_eval.jsonl", highlights_eval(random.Random(2), 100))
    write("entities_train.jsonl", entities(random.Random(3), "train", 1500))
    write("entities_eval.jsonl", entities(random.Random(4), "eval", 300))
    write("questions_train.jsonl", questions(random.Random(5), 1500, phrasing=0))
    write("questions_eval.jsonl", questions(random.Random(6), 200, phrasing=1))
    write("shapes_train.jsonl", shapes(random.Random(7), "train", 800))
    write("shapes_eval.jsonl", shapes(random.Random(8), "eval", 200))
    generation_train = prompts(random.Random(3), 1000)
    write("prompts_train.jsonl", generation_train)
    write("prompts_eval.jsonl", prompts_eval(random.Random(4), 50, {r["prompt"] for r in generation_train}))


if __name__ == "__main__":
    main()
