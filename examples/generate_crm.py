"""Deterministic generator of a realistic B2B CRM contact export (HubSpot, Pipedrive or Nutshell).

The committed starter file ``examples/crm-contacts.csv`` (2,000 contacts at 400 accounts,
5 owners, seed 7, HubSpot headers) is re-made with::

    python examples/generate_crm.py --out examples/crm-contacts.csv

Other styles and sizes: ``--style pipedrive|nutshell``, ``--format jsonl``, ``--contacts N``,
``--accounts M``, ``--owners K``, ``--seed S`` (see ``--help``). Same arguments give
byte-identical output. Rows are streamed with flat memory: account ``i`` and its contacts come
from ``random.Random(seed * 1_000_003 + i)`` (only the contacts-per-account counts are drawn in
sequence), so a million rows need no more memory than ten. Contacts of one account are
adjacent rows and share the account's owner and company columns. Standard library only;
importing the module has no side effects (``generate_rows`` and ``HEADERS`` are for tests).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import random
import sys
import unicodedata
from collections.abc import Iterator
from datetime import date, timedelta
from json.encoder import encode_basestring as quote
from pathlib import Path
from typing import NamedTuple, TextIO

# fmt: off
HEADERS: dict[str, list[str]] = {
    "hubspot": ["Record ID", "Email", "First Name", "Last Name", "Job Title", "Phone Number",
                "Lifecycle Stage", "Contact owner", "Contact owner email", "Company ID",
                "Company name", "Company Domain Name", "Industry", "Country/Region",
                "Number of Employees", "Time Zone", "Preferred language", "Decision Maker",
                "Lead Score", "Last Meeting Date", "LinkedIn URL", "Annual Revenue", "Tech Stack"],
    "pipedrive": ["Person - ID", "Person - Email", "Person - First name", "Person - Last name",
                  "Person - Job title", "Person - Phone", "Deal - Stage", "Person - Owner",
                  "Person - Owner email", "Organization - ID", "Organization - Name",
                  "Organization - Website", "Organization - Industry", "Organization - Country",
                  "Organization - Number of employees", "Person - Time zone", "Person - Language",
                  "Person - Decision maker", "Person - Lead score", "Person - Last meeting",
                  "Person - LinkedIn", "Organization - Annual revenue",
                  "Organization - Tech stack"],
    "nutshell": ["Contact ID", "Email", "First Name", "Last Name", "Title", "Phone",
                 "Pipeline Stage", "Assigned To", "Assigned To Email", "Company ID", "Company",
                 "Company URL", "Company Industry", "Company Country", "Company Size", "Timezone",
                 "Language", "Decision Maker", "Lead Score", "Last Meeting", "LinkedIn",
                 "Company Revenue", "Company Tech Stack"],
}
STAGES: dict[str, list[str]] = {
    "hubspot": ["research", "prospecting", "connecting", "qualification", "pitching",
                "objection_handling", "negotiation", "customer", "lost"],
    "pipedrive": ["Research", "Prospecting", "Contact Made", "Qualified", "Demo Scheduled",
                  "Objections", "Negotiations Started", "Won", "Lost"],
    "nutshell": ["ICP", "Prospect", "Connected", "Qualified", "Pitch", "Objection",
                 "Negotiation", "Closed Won", "Closed Lost"],
}
STAGE_WEIGHTS = (30, 25, 15, 9, 6, 4, 3, 5, 3)  # percent, same order as STAGES[style]
_SITE = {"hubspot": "%s", "pipedrive": "https://www.%s", "nutshell": "www.%s"}
# style -> (contact id format, base, stride, company id format, base, stride); hubspot-like
# ids leave random gaps, pipedrive and nutshell count up
_IDS = {"hubspot": ("%d", 501_000_000, 17, "%d", 7_340_000_000, 37),
        "pipedrive": ("%d", 1001, 1, "%d", 101, 1), "nutshell": ("C-%06d", 1, 1, "CO-%06d", 1, 1)}
_BOOLS = {"hubspot": ("true", "false"), "pipedrive": ("Yes", "No"), "nutshell": ("true", "false")}
_SCORE_BASE = (25, 35, 45, 55, 62, 58, 72, 85, 20)  # mean lead score per stage
_MEETING_BLANK = (0.6, 0.6, 0.35, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1)  # overall ~40% blank
OWNER_DOMAIN = "salescycle-demo.example"
_REPS = [("Mette", "Kristensen"), ("James", "Whitfield"), ("Åsa", "Lindberg"),
         ("Jonas", "Virtanen"), ("Ingrid", "Solheim"), ("Oliver", "Hughes"),
         ("Sofie", "Brandt"), ("Mikael", "Nyström")]


def _ws(text: str) -> list[str]:
    return text.split("|")


# code: (TLD, time zones (repeats weight the pick), phone with # for digits, legal suffixes,
#        language, share of contacts who prefer English)
_COUNTRIES: dict[str, tuple[str, tuple[str, ...], str, tuple[str, ...], str, float]] = {
    "DK": ("dk", ("Europe/Copenhagen",), "+45 2# ## ## ##", ("ApS", "A/S"), "da", 0.15),
    "SE": ("se", ("Europe/Stockholm",), "+46 7# ### ## ##", ("AB",), "sv", 0.15),
    "NO": ("no", ("Europe/Oslo",), "+47 4## ## ###", ("AS", "ASA"), "nb", 0.15),
    "FI": ("fi", ("Europe/Helsinki",), "+358 40 ### ####", ("Oy", "Oyj"), "fi", 0.15),
    "GB": ("co.uk", ("Europe/London",), "+44 77## ######", ("Ltd", "plc"), "en", 0.0),
    "US": ("com", ("America/New_York",) * 2 + ("America/Chicago", "America/Los_Angeles"),
                   "+1 5## ####", ("Inc.", "LLC", "Corp."), "en", 0.0),
    "DE": ("de", ("Europe/Berlin",), "+49 15# ########", ("GmbH", "AG"), "de", 0.1),
    "NL": ("nl", ("Europe/Amsterdam",), "+31 6 ########", ("B.V.", "N.V."), "nl", 0.1),
}
_US_AREAS = {"America/New_York": ("212", "646", "617", "404"),
             "America/Chicago": ("312", "773", "214", "512"),
             "America/Los_Angeles": ("213", "310", "415", "206")}
_INDUSTRY = {"S": "Software", "L": "Logistics", "M": "Manufacturing", "F": "Financial Services",
             "H": "Healthcare", "R": "Retail", "E": "Energy", "P": "Professional Services",
             "U": "Education", "D": "Media"}


class _Group(NamedTuple):
    """Names of one language area: company name = head + tail + " " + core + legal suffix."""

    countries: str  # one or two country codes; of two, the first gets 55% of the accounts
    prefixes: list[str]
    cores: list[tuple[str, str]]  # (word, industry)
    first: list[str]
    last: list[str]


def _group(countries: str, heads: str, tails: str, cores: str, first: str, last: str) -> _Group:
    prefixes = [h + t for h in _ws(heads) for t in _ws(tails) if h[-1] not in t[:2]]  # no Ashshore
    return _Group(countries, prefixes,
                  [(w[2:], _INDUSTRY[w[0]]) for w in _ws(cores)], _ws(first), _ws(last))


_GROUPS = [  # the number of name combinations sets each area's share of the accounts
    _group("DK", "Nord|Syd|Øster|Vester|Hav|Sol|Skov|Fjord|Lyng|Bøge|Ege|Klit|Ravns|Mølle",
           "lys|vang|holm|gård|bæk|dal|strand|havn|bakke|lund|høj|toft",
           "L:Logistik|S:Software|S:Systemer|S:Analytics|P:Rådgivning|E:Energi|F:Finans|"
           "H:Sundhed|R:Handel|M:Industri|D:Medier|U:Akademi",
           "Søren|Jørgen|Mette|Anne|Mads|Frederik|Sofie|Ida|Rasmus|Kasper|Line|Camilla|Morten|"
           "Henrik|Louise|Mikkel|Signe|Lærke|Bjørn|Trine|Anne-Mette",
           "Østergaard|Hansen|Jensen|Nielsen|Pedersen|Andersen|Christensen|Larsen|Sørensen|"
           "Rasmussen|Jørgensen|Madsen|Kristensen|Møller|Mølgaard|Holm|Lund|Kjær|Bæk"),
    _group("SE", "Norr|Söder|Björk|Gran|Sjö|Älv|Fjäll|Ek|Löv|Sten|Vår|Havs|Mälar|Skär",
           "vik|holm|dal|ström|udden|sund|ås|näs|fors|gård|backen|lid",
           "S:Software|L:Logistik|S:Data|S:System|F:Finans|H:Hälsa|R:Handel|E:Energi|"
           "M:Industri|D:Media|P:Konsult|U:Utbildning",
           "Åsa|Björn|Lars|Karin|Erik|Anna|Johan|Maria|Gustav|Elin|Oskar|Linnéa|Sven|Märta|"
           "Ingrid|Håkan|Göran|Ebba|Axel|Åke|Stina",
           "Lindqvist|Ähman|Andersson|Johansson|Karlsson|Nilsson|Eriksson|Larsson|Persson|"
           "Svensson|Lindström|Åberg|Sjöberg|Ekström|Wallén|Bergström|Löfgren|Öberg|Söderlund"),
    _group("NO", "Fjord|Fjell|Hav|Nord|Tinde|Bølge|Kyst|Troll|Vidde|Elve|Skog|Ørne",
           "heim|vik|berg|lys|dal|nes|sol|stad|tun|li",
           "S:Analytics|L:Logistikk|S:Data|S:Systemer|E:Energi|F:Finans|H:Helse|R:Handel|"
           "M:Industri|D:Media|P:Rådgivning|U:Læring",
           "Ola|Kari|Ingrid|Magnus|Sigrid|Håkon|Eirik|Solveig|Tor|Åse|Marius|Ragnhild|Øystein|"
           "Ingvild|Sindre|Jørgen|Kjersti|Bård|Nora",
           "Hansen|Johansen|Olsen|Berg|Haugen|Hagen|Bakken|Solberg|Strand|Dahl|Lie|Nygård|"
           "Halvorsen|Bråten|Sæther|Løvås|Fjeld|Aasen"),
    _group("FI", "Koivu|Järvi|Meri|Kallio|Lumi|Kuusi|Tunturi|Karhu",
           "ranta|mäki|tuuli|linna|niemi|salo|vaara|lahti",
           "S:Software|L:Logistiikka|S:Data|E:Energia|F:Rahoitus|H:Terveys|R:Kauppa|"
           "M:Teollisuus|D:Media|P:Konsultointi",
           "Mikko|Anna|Juha|Laura|Timo|Päivi|Jussi|Satu|Antti|Sanna|Ville|Riikka|Tuomas|Heidi|"
           "Eero|Aino|Kaisa|Sami|Jyrki|Minna",
           "Virtanen|Korhonen|Mäkinen|Nieminen|Mäkelä|Hämäläinen|Laine|Heikkinen|Koskinen|"
           "Järvinen|Lehtonen|Saarinen|Salminen|Heinonen|Niemi|Häkkinen|Kärkkäinen"),
    _group("GBUS", "Bright|Iron|North|Blue|Silver|Red|Oak|Clear|Green|Lake|High|West|Kings|Ash",
           "water|bridge|gate|stone|line|wood|field|path|hill|shore|moor|brook|view|ford",
           "S:Systems|S:Analytics|L:Logistics|S:Software|F:Capital|H:Health|R:Retail|E:Energy|"
           "M:Manufacturing|P:Consulting|U:Learning|D:Media|L:Freight|S:Labs",
           "James|Emma|Oliver|Sophie|William|Charlotte|Daniel|Hannah|Thomas|Olivia|Michael|"
           "Jessica|David|Emily|Chris|Sarah|Ryan|Matthew|Rachel|Renée|André|Zoë",
           "Smith|Johnson|Williams|Brown|Taylor|Davies|Wilson|Evans|Roberts|Walker|Wright|"
           "Thompson|White|Hughes|Edwards|Green|Hall|O'Brien|Clarke|Miller|Garcia"),
    _group("DE", "Rhein|Elb|Nord|Alpen|Hanse|Isar|Main|Wald", "werk|stern|blick|tor|tal|ufer|feld",
           "L:Logistik|S:Software|S:Systeme|E:Energie|M:Maschinenbau|P:Beratung|F:Finanz",
           "Lukas|Anna|Jonas|Lena|Felix|Julia|Maximilian|Paul|Katharina|Jürgen|Jörg|Birgit|Uwe",
           "Müller|Schmidt|Schneider|Fischer|Weber|Meyer|Wagner|Becker|Schäfer|Krüger|Köhler"),
    _group("NL", "Polder|Duin|Tulpen|Grachten|Waal|Zuid|Noord|Maas", "land|veld|hof|kade|poort",
           "L:Logistiek|S:Software|S:Data|E:Energie|P:Advies|H:Zorg|R:Handel",
           "Daan|Sanne|Lucas|Emma|Jesse|Lotte|Thijs|Femke|Bram|Anouk|Sem|Fleur|Ruben|Iris",
           "de Vries|Jansen|de Jong|Bakker|Visser|Smit|Meijer|van den Berg|van Dijk|de Boer"),
]
_QUALIFIERS = _ws("Group|Partners|Solutions|Nordic|International|Holding|Labs|Collective")
# (title, weight, probability that the contact is a decision maker); overall ~30% true
_TITLES = [("CEO", 4, 0.9), ("CTO", 5, 0.85), ("CFO", 3, 0.85), ("COO", 2, 0.8),
           ("VP Sales", 4, 0.75), ("VP Engineering", 2, 0.6), ("Head of Marketing", 5, 0.55),
           ("Head of IT", 5, 0.55), ("Head of Sales", 4, 0.55), ("Sales Director", 4, 0.5),
           ("Marketing Manager", 8, 0.2), ("IT Manager", 7, 0.25), ("Operations Manager", 7, 0.2),
           ("Procurement Lead", 4, 0.35), ("Product Manager", 6, 0.1), ("Developer", 8, 0.02),
           ("Senior Developer", 5, 0.03), ("Account Executive", 5, 0.03), ("HR Manager", 3, 0.1),
           ("Business Analyst", 4, 0.03), ("Data Engineer", 3, 0.02), ("Office Manager", 2, 0.05)]
_TECH = _ws("Salesforce|HubSpot|Pipedrive|AWS|Azure|Google Cloud|Microsoft 365|Google Workspace|"
            "Slack|Zendesk|Shopify|SAP|Oracle|Snowflake|Jira|Intercom|Stripe|Dynamics 365")
_TRANSLIT = str.maketrans({"ø": "o", "æ": "ae", "å": "a", "ä": "a", "ö": "o", "é": "e",
                           "ü": "u", "ë": "e", "ß": "ss", " ": "", "'": ""})
# fmt: on


def ascii_slug(text: str) -> str:
    """Lower-case ``text`` and transliterate it to ASCII (ø->o, æ->ae, å->a, ...)."""
    out = text.lower().translate(_TRANSLIT)
    if not out.isascii():
        out = unicodedata.normalize("NFKD", out).encode("ascii", "ignore").decode()
    return out


def owner(j: int) -> tuple[str, str]:
    """Return the display name and e-mail of sales rep ``j`` (unique for every ``j``)."""
    n = len(_REPS)
    first, last = _REPS[j % n][0], _REPS[(j // n + j) % n][1]
    k = j // (n * n)
    email = f"{ascii_slug(first)}.{ascii_slug(last)}{k + 1 if k else ''}@{OWNER_DOMAIN}"
    return f"{first} {last}", email


def _account_sizes(contacts: int, accounts: int, seed: int) -> Iterator[int]:
    """Yield uneven contacts-per-account counts (>= 1 each) that add up to ``contacts``."""
    rng = random.Random(seed ^ 0x5A1E5)
    left, n = contacts, min(accounts, contacts)
    for i in range(n):
        rest = n - i - 1
        if rest == 0:
            yield left
            return
        mean = left / (rest + 1)
        size, cap = 1, max(15, int(mean * 3))
        while mean > 1 and (size := 1 + int(rng.expovariate(1 / (mean - 1)) + 0.5)) > cap:
            pass  # long-tailed: mostly 1-6 contacts, a few big accounts
        size = min(size, left - rest)
        left -= size
        yield size


def _tuples(
    contacts: int, accounts: int, owners: int, seed: int, style: str
) -> Iterator[tuple[str, ...]]:
    """Yield rows as tuples of strings in ``HEADERS[style]`` order."""
    stages, (yes, no), site = STAGES[style], _BOOLS[style], _SITE[style]
    cfmt, cbase, cstep, afmt, abase, astep = _IDS[style]
    owner_list = [owner(j) for j in range(owners)]
    stage_pick = [stage for stage, w in enumerate(STAGE_WEIGHTS) for _ in range(w)]
    title_pick = [(title, dm) for title, w, dm in _TITLES for _ in range(w)]
    dates = [(date(2026, 1, 1) + timedelta(d)).isoformat() for d in range(365)]
    scores = [str(min(100, max(0, v - 40))) for v in range(200)]  # lead score + 40 -> text
    slugs = {n: ascii_slug(n) for grp in _GROUPS for n in (*grp.first, *grp.last)}
    setup = random.Random(seed)
    # each (area, domain name) once: areas have disjoint TLDs, so every domain is unique
    pairs = ((gi, p, c) for gi, g in enumerate(_GROUPS) for p in g.prefixes for c in g.cores)
    combos = {(gi, ascii_slug(p + c[0])): (p, c) for gi, p, c in pairs}
    order = list(combos)
    phones = {code: c[2].replace("#", "%s") for code, c in _COUNTRIES.items()}
    stacks = ["; ".join(setup.sample(_TECH, 2 + setup.randrange(4))) for _ in range(256)]
    # golden-ratio stride through the combinations: neighbouring accounts differ in area/name
    offset, step = setup.randrange(len(order)), int(len(order) * 0.618034)
    while math.gcd(step, len(order)) != 1:
        step += 1
    salt = setup.getrandbits(32)
    rng, contact, n_titles, n_groups = random.Random(), 0, len(title_pick), len(_GROUPS)
    rnd, gauss = rng.random, rng.gauss
    for i, size in enumerate(_account_sizes(contacts, accounts, seed)):
        rng.seed(seed * 1_000_003 + i)  # every account column comes from this stream
        gi, slug = key = order[(offset + i * step) % len(order)]  # a permutation of combos
        group, (prefix, (core, industry)) = _GROUPS[gi], combos[key]
        rounds = i // len(order)  # > 0 only once every name combination has been used
        code = group.countries[:2] if rnd() < 0.55 else group.countries[-2:]
        tld, zones, _, legal, local_lang, en_share = _COUNTRIES[code]
        qual = f" {_QUALIFIERS[(rounds - 1) % len(_QUALIFIERS)]}" if rounds else ""
        company = f"{prefix} {core}{qual} {legal[int(rnd() * len(legal))]}"
        domain = f"{slug}{rounds + 1 if rounds else ''}.{tld}"
        zone = zones[int(rnd() * len(zones))]
        phone_fmt = phones[code]
        if code == "US":  # an area code in the company's time zone
            phone_fmt = phone_fmt.replace("+1", f"+1 {_US_AREAS[zone][int(rnd() * 4)]}")
        digits = phone_fmt.count("%s")
        digit_fmt, scale = f"%0{digits}d", 10**digits
        employees = min(20000, max(5, round(math.exp(gauss(math.log(250), 1.2)))))
        revenue = f"{employees * 150_000 * math.exp(gauss(0, 0.5)):.2f}"
        tech = stacks[int(rnd() * len(stacks))]
        owner_name, owner_email = owner_list[int(rnd() * owners)]
        company_id = afmt % (abase + i * astep + int(rnd() * astep))
        account: tuple[str, ...] = (owner_name, owner_email, company_id, company, site % domain)
        account += (industry, code, str(employees), zone)
        seen = set()
        for _ in range(size):
            names = _GROUPS[int(rnd() * n_groups)] if rnd() < 0.12 else group
            first = names.first[int(rnd() * len(names.first))]
            last = names.last[int(rnd() * len(names.last))]
            slug_first, slug_last = slugs[first], slugs[last]
            local = base = f"{slug_first}.{slug_last}"
            k = 1
            while local in seen:  # domains are unique, so this makes every e-mail unique
                k += 1
                local = f"{base}{k}"
            seen.add(local)
            title, dm_chance = title_pick[int(rnd() * n_titles)]
            stage = stage_pick[int(rnd() * 100)]
            lang = "en" if rnd() < en_share else local_lang
            if code == "FI" and rnd() < 0.06:
                lang = "sv"
            dm = "" if rnd() < 0.08 else yes if rnd() < dm_chance else no
            score = int(_SCORE_BASE[stage] + 40 + (rnd() + rnd() - 1) * 36)  # sd ~15
            lead = "" if rnd() < 0.1 else scores[score]
            met = "" if rnd() < _MEETING_BLANK[stage] else dates[int(rnd() * 365)]
            linkedin = ""
            if rnd() >= 0.2:  # the tag is a bijection of the contact number: URLs are unique
                tag = ((contact ^ salt) * 0x9E3779B1) & 0xFFFFFFFF
                linkedin = f"https://www.linkedin.com/in/{slug_first}-{slug_last}-{tag:08x}"
            cid = cfmt % (cbase + contact * cstep + int(rnd() * cstep))
            contact += 1
            phone = phone_fmt % tuple(digit_fmt % int(rnd() * scale))
            person = (cid, f"{local}@{domain}", first, last, title, phone, stages[stage])
            yield (*person, *account, lang, dm, lead, met, linkedin, revenue, tech)


def generate_rows(
    contacts: int, accounts: int, owners: int, seed: int, style: str
) -> Iterator[dict[str, str]]:
    """Stream ``contacts`` rows (column -> value, keys in ``HEADERS[style]`` order)."""
    if style not in HEADERS:
        raise ValueError(f"unknown style {style!r}; expected one of {sorted(HEADERS)}")
    headers = HEADERS[style]
    for row in _tuples(contacts, accounts, owners, seed, style):
        yield dict(zip(headers, row))  # noqa: B905 (rows always match the headers)


def write(
    out: TextIO, contacts: int, accounts: int, owners: int, seed: int, style: str, fmt: str
) -> None:
    """Write the export to ``out`` as CSV (with header row) or JSON lines."""
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADERS[style])
        writer.writerows(_tuples(contacts, accounts, owners, seed, style))
    else:
        # the same text as json.dumps(row, ensure_ascii=False), three times as fast
        keys = ", ".join(f"{quote(h).replace('%', '%%')}: %s" for h in HEADERS[style])
        line = f"{{{keys}}}\n"
        for row in _tuples(contacts, accounts, owners, seed, style):
            out.write(line % tuple(map(quote, row)))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--contacts", type=int, default=2000)
    ap.add_argument("--accounts", type=int, help="default: max(1, contacts // 5)")
    ap.add_argument("--owners", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--style", choices=sorted(HEADERS), default="hubspot")
    ap.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    ap.add_argument("--out", type=Path, help="output file (default: stdout)")
    args = ap.parse_args(argv)
    accounts = max(1, args.contacts // 5) if args.accounts is None else args.accounts
    if args.contacts < 0 or accounts < 1 or args.owners < 1:
        ap.error("--contacts must be >= 0, --accounts and --owners >= 1")
    params = (args.contacts, accounts, args.owners, args.seed, args.style, args.format)
    if args.out is not None:
        with args.out.open("w", encoding="utf-8", newline="") as fh:
            write(fh, *params)
        return 0
    stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        write(stdout, *params)
        stdout.flush()
    except BrokenPipeError:
        sys.stderr.close()  # e.g. `| head`: stop quietly
    finally:
        stdout.detach()
    return 0


if __name__ == "__main__":
    sys.exit(main())
