"""The scenario grammar behind ``fintune synth``: fictional companies, number ranges and phrasing templates.

Everything here was written for fintune; no sentence is copied from a news source. Companies, brokers and people are
invented so that no generated line can be mistaken for real news. A template is a ``str.format`` pattern filled from
a *facts* dict that :func:`scenario_facts` draws for one (scenario, label, strength); numbers come from plausible
ranges and grow with the strength, so a bigger beat reads bigger and moves the price more.
"""

from __future__ import annotations

import random
from typing import Any

SCENARIOS = ("earnings", "guidance", "mna", "macro", "sector", "analyst", "corporate")
"""Scenario kinds; ``macro`` items are market-wide (no ticker), the others name one fictional company."""

# Invented roots; combined with a sector suffix they give names like "Norvane Systems".
COMPANY_ROOTS = (
    "Norvane", "Caldrix", "Vestmoor", "Quillon", "Arkhaven", "Brismere", "Tolvera", "Ostrane", "Kelloway",
    "Myrant", "Zephora", "Halvix", "Pellucor", "Dranmoor", "Cirrane", "Loxbury", "Venthal", "Aurimar", "Saltrek",
    "Grendwick", "Obrion", "Fennick", "Valtora", "Corvantis", "Embrel", "Prasko", "Tamberlin", "Wexcourt",
    "Yarrowell", "Solmere", "Ulvira", "Hestrom", "Jarnwell", "Marrowgate", "Ondrix", "Rilmont",
)

SECTORS: dict[str, dict[str, Any]] = {
    "technology": {"suffixes": ("Systems", "Software", "Networks", "Semiconductor"), "peers": "chipmakers and software names",
                   "products": ("cloud subscriptions", "data-center chips", "security software", "network switches"),
                   "driver_up": ("corporate IT budgets are expanding faster than expected",
                                 "a survey showed chip lead times shortening", "cloud spending estimates were raised"),
                   "driver_down": ("enterprise customers are delaying hardware upgrades",
                                   "a survey pointed to shrinking software budgets", "memory chip prices slumped")},
    "healthcare": {"suffixes": ("Therapeutics", "Biosciences", "Medical"), "peers": "drugmakers",
                   "products": ("its lead oncology drug", "a once-weekly diabetes therapy", "surgical robots",
                                "diagnostic test kits"),
                   "driver_up": ("regulators signalled a faster review path for new therapies",
                                 "insurers agreed to widen coverage of new treatments",
                                 "hospital procedure volumes recovered"),
                   "driver_down": ("lawmakers advanced a bill to cap reimbursement rates",
                                   "regulators tightened approval standards", "hospital procedure volumes slowed")},
    "energy": {"suffixes": ("Energy", "Petroleum", "Renewables"), "peers": "oil and gas producers",
               "products": ("natural gas output", "solar installations", "offshore drilling", "refined fuels"),
               "driver_up": ("crude prices climbed on tighter supply", "producers agreed to extend output cuts",
                             "a cold snap lifted natural gas prices"),
               "driver_down": ("crude prices slid on swelling inventories", "producers signalled higher output",
                               "a mild winter sank natural gas prices")},
    "financials": {"suffixes": ("Bancorp", "Financial", "Capital"), "peers": "regional lenders",
                   "products": ("its mortgage book", "card lending", "wealth management", "commercial loans"),
                   "driver_up": ("loan demand picked up and deposit costs eased",
                                 "regulators eased proposed capital rules", "the yield curve steepened"),
                   "driver_down": ("credit-card delinquencies rose for a third straight month",
                                   "regulators proposed tougher capital rules", "deposit outflows accelerated")},
    "consumer": {"suffixes": ("Foods", "Retail Group", "Brands"), "peers": "retailers",
                 "products": ("packaged snacks", "its outlet stores", "private-label apparel", "frozen meals"),
                 "driver_up": ("consumer spending held up better than forecast",
                               "holiday traffic came in ahead of forecasts", "input costs for packaged goods eased"),
                 "driver_down": ("shoppers cut back on discretionary purchases",
                                 "holiday traffic came in below forecasts", "commodity costs for packaged goods rose")},
    "industrials": {"suffixes": ("Industries", "Logistics", "Aerospace"), "peers": "freight and machinery stocks",
                    "products": ("freight volumes", "jet engine parts", "industrial pumps", "rail services"),
                    "driver_up": ("factory orders rebounded sharply", "airlines placed large jet orders",
                                  "infrastructure spending was approved"),
                    "driver_down": ("freight rates dropped to a two-year low", "factory orders contracted again",
                                    "airlines deferred jet deliveries")},
    "materials": {"suffixes": ("Mining", "Chemicals", "Materials"), "peers": "miners and chemical makers",
                  "products": ("copper output", "specialty resins", "lithium concentrate", "industrial coatings"),
                  "driver_up": ("metal prices jumped on strong demand", "construction activity picked up",
                                "export restrictions tightened global supply"),
                  "driver_down": ("metal prices fell on weak demand", "construction activity slowed",
                                  "new mines added to a supply glut")},
}

BROKERS = ("Harrow & Finch", "Meridale Securities", "Copperline Research", "Albright Kessel", "Stonegate Partners",
           "Westfold Capital Markets", "Pryor Lund", "Greyhaven Securities", "Ashcombe & Tull")
FIRST_NAMES = ("Elena", "Marcus", "Priya", "Tomas", "Ingrid", "Daniel", "Amara", "Felix", "Yuki", "Rosa", "Owen",
               "Leila", "Viktor", "Hana", "Samuel", "Noor")
LAST_NAMES = ("Varga", "Okafor", "Lindqvist", "Moreau", "Achterberg", "Castellanos", "Whitlow", "Nakamura",
              "Brennick", "Oduya", "Halloran", "Petrescu", "Szabo", "Delacroix")
ROLES = ("chief financial officer", "chief operating officer", "chief technology officer", "head of sales",
         "general counsel", "board chair")
HEDGES = ("reportedly", "said to be", "understood to be")
SOURCES = ("according to people familiar with the matter", "people briefed on the talks said",
           "sources said", "according to a person close to the deal")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")

# Synonym slots drawn fresh for every item (more phrasing variety at no cost).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "beats": ("beats", "tops", "exceeds", "comes in above", "surpasses"),
    "misses": ("misses", "falls short of", "trails", "comes in below", "undershoots"),
    "raises": ("raises", "lifts", "boosts", "increases", "ups"),
    "cuts": ("cuts", "lowers", "trims", "slashes", "reduces"),
    "rise": ("rise", "climb", "gain", "jump", "advance"),
    "fall": ("fall", "slide", "drop", "slip", "tumble"),
    "estimates": ("estimates", "forecasts", "expectations", "consensus estimates", "analyst forecasts"),
    "shares": ("shares", "the stock", "its stock"),
}

# ---------------------------------------------------------------- headline templates: scenario -> label -> list

HEADLINES: dict[str, dict[str, tuple[str, ...]]] = {
    "earnings": {
        "positive": (
            "{cotk} {beats} {q} profit {estimates} with EPS of {eps} versus {eps_est} expected",
            "{co} posts {q} EPS of {eps}, ahead of the {eps_est} consensus; revenue up {rev_growth}",
            "{cotk} quarterly revenue rises {rev_growth} to {rev}, {beats} {estimates}",
            "Strong demand for {product} drives {q} earnings beat at {cotk}",
            "{cotk} reports record {q} revenue of {rev} as margins widen to {margin}",
            "{co} ({tk}) swings to a {q} profit well above {estimates}",
        ),
        "negative": (
            "{cotk} {misses} {q} {estimates} as EPS comes in at {eps} versus {eps_est}",
            "{co} posts {q} loss per share of {eps_loss}; revenue down {rev_growth}",
            "{cotk} quarterly revenue declines {rev_growth} to {rev} on weak demand for {product}",
            "Margins shrink to {margin} at {cotk} as costs outpace sales in {q}",
            "{cotk} {q} earnings disappoint; EPS of {eps} misses the {eps_est} forecast",
            "{co} ({tk}) reports an unexpected {q} loss as sales of {product} stall",
        ),
        "neutral": (
            "{cotk} {q} EPS of {eps} in line with {eps_est} consensus",
            "{co} reports {q} revenue of {rev}, matching {estimates}",
            "{cotk} {q} results broadly as expected; revenue {rev}",
            "{cotk} posts {q} earnings in line with its own guidance",
            "{co} ({tk}) to report {q} results on {weekday} after the close",
            "{cotk} schedules {q} earnings call for {weekday} morning",
        ),
    },
    "guidance": {
        "positive": (
            "{cotk} {raises} full-year revenue outlook to {guid_lo}-{guid_hi}",
            "{co} lifts {fy} profit forecast by {guid_change}, citing demand for {product}",
            "{cotk} guides {next_q} sales above {estimates} on strength in {product}",
            "{cotk} {raises} annual margin target to {margin}",
            "{co} ({tk}) now sees {fy} EPS of {eps_guid}, up from {eps_guid_old}",
        ),
        "negative": (
            "{cotk} {cuts} full-year revenue outlook to {guid_lo}-{guid_hi}",
            "{co} slashes {fy} profit forecast by {guid_change} as demand for {product} cools",
            "{cotk} guides {next_q} sales below {estimates}, citing slower orders",
            "{cotk} withdraws annual guidance amid weak demand for {product}",
            "{co} ({tk}) now sees {fy} EPS of {eps_guid}, down from {eps_guid_old}",
        ),
        "neutral": (
            "{cotk} reaffirms {fy} revenue outlook of {guid_lo}-{guid_hi}",
            "{co} keeps full-year forecast unchanged at its investor day",
            "{cotk} maintains {fy} guidance, in line with {estimates}",
            "{co} ({tk}) reiterates annual EPS target of {eps_guid}",
            "{cotk} to update its {fy} outlook at the {weekday} capital markets day",
        ),
    },
    "mna": {
        "positive": (
            "{cotk} {hedge} in talks to be acquired by {acquirer} at a {premium} premium",
            "{acquirer} agrees to buy {cotk} for {deal} in cash",
            "{cotk} to receive {deal} takeover offer from {acquirer}, {source}",
            "{cotk} wins approval for its {deal} purchase of {target}, ahead of schedule",
            "{co} agrees to sell non-core {product} unit for {deal}, above {estimates}",
        ),
        "negative": (
            "{acquirer} walks away from planned {deal} deal for {cotk}",
            "Regulators move to block {cotk}'s {deal} acquisition of {target}",
            "{cotk} {hedge} preparing to overpay for {target}, {source}",
            "{co} takes {writedown} writedown on its purchase of {target}",
            "Takeover talks between {cotk} and {acquirer} collapse over price",
        ),
        "neutral": (
            "{cotk} completes previously announced acquisition of {target}",
            "{co} says it is not in talks with {acquirer}, declines further comment",
            "{cotk}'s {deal} deal for {target} closes as expected",
            "{co} ({tk}) extends tender offer for {target} shares by two weeks",
            "{cotk} and {acquirer} file merger paperwork with regulators on schedule",
        ),
    },
    "macro": {
        "positive": (
            "{cb} cuts policy rate by {bps} basis points, more than markets expected",
            "Inflation cools to {cpi}, below the {cpi_est} forecast",
            "Payrolls jump by {jobs} jobs, well above the {jobs_est} expected",
            "Manufacturing PMI rebounds to {pmi}, signalling renewed expansion",
            "Retail sales climb {retail} in the month, beating {estimates}",
        ),
        "negative": (
            "{cb} unexpectedly raises rates by {bps} basis points",
            "Inflation accelerates to {cpi}, above the {cpi_est} forecast",
            "Payrolls grow by only {jobs_small} jobs, far short of the {jobs_est} expected",
            "Manufacturing PMI sinks to {pmi_low}, deepest contraction in {months} months",
            "Retail sales drop {retail} as consumers pull back",
        ),
        "neutral": (
            "{cb} holds rates steady in {month}, as widely expected",
            "{month} inflation steady at {cpi}, matching {estimates}",
            "{month} payroll growth of {jobs_est} jobs lands in line with forecasts",
            "Manufacturing PMI little changed at {pmi_flat} in {month}",
            "{cb} minutes due {weekday}; no policy change expected",
            "Weekly jobless claims steady at {claims}, in line with {estimates}",
        ),
    },
    "sector": {
        "positive": (
            "{peers} {rise} as {driver_up}; {cotk} among the biggest gainers",
            "{cotk} set to benefit as {driver_up}",
            "Sector tailwind: {driver_up}, lifting {cotk}",
            "{cotk} outperforms {peers_lc} after {driver_up}",
            "{cotk} shares {rise} {stock_pct} on {weekday} as {driver_up}",
            "{peers} up {sector_pct} this week after {driver_up}; {cotk} leads",
        ),
        "negative": (
            "{peers} {fall} as {driver_down}; {cotk} among the worst hit",
            "{cotk} exposed as {driver_down}",
            "Sector headwind: {driver_down}, weighing on {cotk}",
            "{cotk} lags {peers_lc} after {driver_down}",
            "{cotk} shares {fall} {stock_pct} on {weekday} as {driver_down}",
            "{peers} down {sector_pct} this week after {driver_down}; {cotk} hit hardest",
        ),
        "neutral": (
            "{peers} trade flat ahead of the {month} industry conference; {cotk} unchanged",
            "{cotk} to present at the annual {sector} industry summit on {weekday}, {month} {dom}",
            "Industry group publishes {month} {sector} sector survey; {cotk} among {n_firms} firms sampled",
            "{cotk} joins a {sector} trade association alongside {n_firms} peers",
        ),
    },
    "analyst": {
        "positive": (
            "{broker} upgrades {cotk} to buy, raises price target to {pt_new} from {pt_old}",
            "{cotk} lifted to outperform at {broker} on {product} momentum",
            "{broker} {raises} {cotk} target to {pt_new}, sees {upside} upside",
            "{broker} initiates {cotk} at buy with {pt_new} target",
        ),
        "negative": (
            "{broker} downgrades {cotk} to sell, cuts price target to {pt_new} from {pt_old}",
            "{cotk} cut to underperform at {broker} on slowing {product}",
            "{broker} {cuts} {cotk} target to {pt_new}, sees {upside} downside",
            "{broker} initiates {cotk} at sell with {pt_new} target",
        ),
        "neutral": (
            "{broker} initiates coverage of {cotk} at hold, target {pt_new}",
            "{broker} keeps {cotk} at neutral, price target unchanged at {pt_new}",
            "{broker} transfers coverage of {cotk} to a new analyst, rating unchanged",
            "{cotk} reiterated at market perform by {broker}",
        ),
    },
    "corporate": {
        "positive": (
            "{cotk} announces {buyback} share buyback program",
            "{co} {raises} quarterly dividend by {div_change}",
            "{cotk} wins {deal} multiyear contract for {product}",
            "{cotk} receives regulatory approval for {product}",
            "{co} ({tk}) settles patent dispute on favourable terms, ending a costly fight",
        ),
        "negative": (
            "{cotk} suspends its dividend to preserve cash",
            "{co} recalls {product} over safety concerns",
            "{cotk} discloses regulatory probe into its {product} sales practices",
            "{cotk} chief executive resigns abruptly; no successor named",
            "{co} ({tk}) loses {deal} contract to a rival bidder",
        ),
        "neutral": (
            "{cotk} names {person} as {role}",
            "{co} to hold annual shareholder meeting on {weekday}",
            "{cotk} declares regular quarterly dividend of {dividend} per share",
            "{co} ({tk}) moves headquarters to a new office in the same city",
            "{cotk} appoints {person} to its board of directors",
        ),
    },
}

# A second sentence that turns a headline into a short news snippet (used for a share of items).
DETAILS: dict[str, dict[str, tuple[str, ...]]] = {
    "earnings": {
        "positive": ("Revenue came in at {rev} against {rev_est} expected.", "Gross margin improved to {margin}."),
        "negative": ("Revenue came in at {rev} against {rev_est} expected.", "Gross margin narrowed to {margin}."),
        "neutral": ("Management kept its outlook for the year.", "Revenue was {rev}, close to the {rev_est} estimate."),
    },
    "guidance": {
        "positive": ("The company pointed to a healthy order backlog.", "Executives flagged improving pricing."),
        "negative": ("The company blamed a softer order backlog.", "Executives flagged rising input costs."),
        "neutral": ("Executives said trends are tracking their plan.", "No change was made to the capital budget."),
    },
    "mna": {
        "positive": ("The offer values the company well above its recent trading range.",
                     "Both boards are said to support the terms."),
        "negative": ("Investors had been counting on the deal closing this year.",
                     "Analysts questioned the strategic fit."),
        "neutral": ("Terms were disclosed when the deal was first announced.", "No change to the terms was made."),
    },
    "macro": {
        "positive": ("Bond yields eased after the release.", "Equity futures moved higher on the data."),
        "negative": ("Bond yields rose after the release.", "Equity futures moved lower on the data."),
        "neutral": ("Markets showed little reaction.", "The figure was close to the prior reading."),
    },
    "sector": {
        "positive": ("Analysts expect the trend to continue into next quarter.",),
        "negative": ("Analysts expect the pressure to persist into next quarter.",),
        "neutral": ("The event is held every year.",),
    },
    "analyst": {
        "positive": ("The broker cited improving unit economics.", "The note pointed to upside to margins."),
        "negative": ("The broker cited rising competition.", "The note warned of downside to margins."),
        "neutral": ("The broker sees the valuation as fair.", "The note made no change to estimates."),
    },
    "corporate": {
        "positive": ("The company said the move reflects confidence in its cash flow.",),
        "negative": ("The company did not say how long the issue would last.",),
        "neutral": ("The change takes effect next month.", "The company gave no other details."),
    },
}

# Why the label: written per scenario and label, filled from the same facts.
ANALYSES: dict[str, dict[str, tuple[str, ...]]] = {
    "earnings": {
        "positive": ("Results beat expectations ({eps} vs {eps_est} EPS); upside surprises like this usually lift the stock.",
                     "Revenue growth of {rev_growth} and wider margins point to stronger demand than priced in."),
        "negative": ("Results missed expectations; an earnings shortfall usually pressures the stock.",
                     "Falling revenue ({rev_growth} lower) and thinner margins signal weakening demand."),
        "neutral": ("A scheduled or in-line report carries no clear surprise in either direction.",
                    "Nothing here differs from what the market already expected."),
    },
    "guidance": {
        "positive": ("Raised guidance signals management confidence and pushes estimates higher.",),
        "negative": ("Lowered or withdrawn guidance forces estimate cuts and signals weaker demand.",),
        "neutral": ("Reaffirmed guidance confirms what the market already expects.",),
    },
    "mna": {
        "positive": ("A takeover premium or value-accretive deal is good for shareholders.",
                     "Deal news at an attractive price tends to lift the target's shares."),
        "negative": ("A failed or value-destroying deal removes expected upside for shareholders.",
                     "Deal risk or an overpriced acquisition weighs on the shares."),
        "neutral": ("The deal was already known and priced in; completion is routine.",),
    },
    "macro": {
        "positive": ("Easier policy or stronger data supports earnings and equity valuations broadly.",),
        "negative": ("Tighter policy or weaker data weighs on earnings and equity valuations broadly.",),
        "neutral": ("The data matched expectations, so markets have little to reprice.",),
    },
    "sector": {
        "positive": ("A favourable industry trend should lift revenue across the sector, including this company.",),
        "negative": ("An industry headwind should weigh on revenue across the sector, including this company.",),
        "neutral": ("A routine industry event with no bearing on fundamentals.",),
    },
    "analyst": {
        "positive": ("An upgrade with a higher target ({pt_new}) tends to draw buyers.",),
        "negative": ("A downgrade with a lower target ({pt_new}) tends to prompt selling.",),
        "neutral": ("A hold-type rating with no change in view carries no directional signal.",),
    },
    "corporate": {
        "positive": ("Returning cash or winning business is a tangible positive for shareholders.",),
        "negative": ("A cash squeeze, recall, probe or loss of business is a clear negative.",),
        "neutral": ("A routine corporate event with no effect on the outlook.",),
    },
}

# Hard cases: mixed news whose dominant element decides the label; stated confidence is lower.
MIXED: dict[str, tuple[tuple[str, str], ...]] = {
    "positive": (
        ("{cotk} {misses} {q} revenue view but {raises} full-year outlook to {guid_lo}-{guid_hi}",
         "The revenue miss is offset by higher guidance, which matters more for valuation; a modest positive."),
        ("{cotk} posts a {q} loss on one-off charges, but underlying EPS of {eps} tops {eps_est}",
         "Headline loss is driven by one-offs; the underlying beat is the more durable signal."),
        ("{co} cuts jobs and closes plants, targeting {savings} in annual savings",
         "Restructuring costs now, but the savings target should lift margins; cautiously positive."),
    ),
    "negative": (
        ("{cotk} {beats} {q} EPS {estimates} but {cuts} full-year revenue outlook",
         "The beat is backward-looking; the guidance cut lowers future estimates, so the net is negative."),
        ("{cotk} grows {q} revenue {rev_growth}, yet margin falls to {margin} as costs surge",
         "Growth came at the expense of profitability; margin pressure outweighs the top line."),
        ("{co} {raises} dividend while warning of slower demand for {product}",
         "A small dividend rise does not offset a demand warning; mildly negative."),
    ),
    "neutral": (
        ("{cotk} {beats} on {q} EPS but {misses} on revenue; full-year outlook kept",
         "A profit beat and a revenue miss roughly cancel, and guidance is unchanged."),
        ("{co} names {person} as {role} as predecessor retires after planned handover",
         "A planned succession; leadership change adds little new information."),
        ("{cotk} sells {product} unit for {deal}, roughly in line with book value",
         "A fair-value disposal with proceeds close to book leaves the outlook unchanged."),
    ),
}


# Hard cases that a bag of words cannot read: the label hangs on negation, hedging, who did what to whom (the same
# words with the companies swapped flip the label) or on comparing two numbers. (template, analysis, kind).
TRICKY: dict[str, tuple[tuple[str, str, str], ...]] = {
    "positive": (
        ("{cotk} no longer expects a loss for {fy}", "Removing an expected loss is an upgrade to the outlook.",
         "negation"),
        ("{cotk} says it will not need to raise new equity, easing dilution fears",
         "No dilutive capital raise is better for shareholders than feared.", "negation"),
        ("Regulator closes its probe into {cotk} without any penalty",
         "The end of a probe without a fine removes a risk.", "negation"),
        ("{cotk} wins {deal} contract, beating rival bidder {rival}",
         "This company won the contract; the rival lost it.", "entity"),
        ("{rival} loses key {product} customer to {cotk}", "The customer moved to this company.", "entity"),
        ("{cotk} reports {q} EPS of {eps}; analysts had expected {eps_est}",
         "EPS came in above what analysts expected.", "numbers"),
        ("{cotk} {q} revenue of {rev} compares with {rev_est} expected",
         "Revenue came in above expectations.", "numbers"),
        ("{cotk} sees {next_q} demand for {product} likely running somewhat ahead of plan",
         "A hedged but upward revision of expected demand.", "hedge"),
    ),
    "negative": (
        ("{cotk} no longer expects to meet its {fy} profit target",
         "Abandoning a profit target is a downgrade to the outlook.", "negation"),
        ("{cotk} cannot rule out further writedowns on its {product} business",
         "Open-ended writedown risk weighs on the shares.", "negation"),
        ("{cotk} says its {product} unit will not return to profit this year",
         "A longer loss at the unit lowers earnings.", "negation"),
        ("{rival} wins {deal} contract, beating rival bidder {cotk}",
         "The rival won the contract this company bid for.", "entity"),
        ("{cotk} loses key {product} customer to {rival}", "The customer moved to a rival.", "entity"),
        ("{cotk} reports {q} EPS of {eps}; analysts had expected {eps_est}",
         "EPS came in below what analysts expected.", "numbers"),
        ("{cotk} {q} revenue of {rev} compares with {rev_est} expected",
         "Revenue came in below expectations.", "numbers"),
        ("{cotk} sees {next_q} demand for {product} possibly running a little behind plan",
         "A hedged but downward revision of expected demand.", "hedge"),
    ),
    "neutral": (
        ("{cotk} denies it plans to cut its dividend; payout unchanged",
         "A denial that leaves the payout where it was changes nothing.", "negation"),
        ("{cotk} says it is not in talks to buy or sell any business",
         "No deal, no change: the status quo is confirmed.", "negation"),
        ("Peer {rival} {beats} {q} {estimates}; {cotk} reports on {weekday}",
         "The news is about another company; this one has not reported yet.", "entity"),
        ("{cotk} reports {q} EPS of {eps}; analysts had expected {eps_est}",
         "EPS came in at what analysts expected.", "numbers"),
        ("{cotk} {q} revenue of {rev} compares with {rev_est} expected",
         "Revenue came in at what analysts expected.", "numbers"),
        ("{cotk} says {next_q} demand for {product} may be roughly in line with plan",
         "A hedged confirmation of the existing plan.", "hedge"),
    ),
}


def _money(x: float) -> str:
    return f"${x / 1000:.1f} billion" if x >= 1000 else f"${x:.0f} million"


def scenario_facts(r: random.Random, company: dict[str, str], label: str, strength: float) -> dict[str, str]:
    """Draw every slot value for one item: numbers consistent with ``label`` and growing with ``strength``.

    Args:
        r: the item's random generator (seeded by the caller, so output is deterministic).
        company: a company dict from ``make_universe`` (name, ticker, sector), or a placeholder for macro items.
        label: negative / neutral / positive (decides the sign of surprises and changes).
        strength: 0..1, how big the news is (bigger beats, cuts, premiums).
    """
    sign = {"positive": 1, "negative": -1, "neutral": 0}[label]
    sec = SECTORS[company["sector"]]
    eps_est = round(r.uniform(0.15, 3.5), 2)
    surprise = sign * (0.03 + 0.3 * strength) + (0 if sign else r.uniform(-0.005, 0.005))
    eps = max(0.01, round(eps_est * (1 + surprise), 2))
    rev_est = r.uniform(120, 9000)
    rev = rev_est * (1 + sign * (0.01 + 0.08 * strength) + (0 if sign else r.uniform(-0.004, 0.004)))
    growth = 2 + 25 * strength
    guid_mid = r.uniform(300, 12000)
    guid_change = 3 + 17 * strength
    eps_guid_old = round(r.uniform(0.8, 9.0), 2)
    pt_old = r.uniform(12, 400)
    move = sign * (0.06 + 0.35 * strength)
    deal = r.uniform(150, 25000)
    year = r.choice((2024, 2025, 2026))
    person = f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}"
    jobs_est = r.randrange(90, 260) * 1000
    cpi_est = r.uniform(1.8, 4.5)
    facts = {
        "co": company["name"], "tk": company["ticker"], "cotk": f"{company['name']} ({company['ticker']})",
        "sector": company["sector"], "peers": sec["peers"].capitalize(), "peers_lc": sec["peers"], "product": r.choice(sec["products"]),
        "driver_up": r.choice(sec["driver_up"]), "driver_down": r.choice(sec["driver_down"]),
        "stock_pct": f"{1 + 7 * strength:.1f}%", "sector_pct": f"{0.8 + 4 * strength:.1f}%",
        "month": r.choice(MONTHS), "dom": str(r.randrange(1, 29)), "n_firms": str(r.randrange(12, 80)),
        "q": r.choice(("Q1", "Q2", "Q3", "Q4", "first-quarter", "second-quarter", "third-quarter", "fourth-quarter")),
        "next_q": r.choice(("next-quarter", "Q1", "Q2", "Q3", "Q4", "second-half")),
        "fy": r.choice((f"{year}", f"fiscal {year}", "full-year")),
        "eps": f"${eps:.2f}", "eps_est": f"${eps_est:.2f}", "eps_loss": f"${r.uniform(0.05, 1.2):.2f}",
        "rev": _money(rev), "rev_est": _money(rev_est), "rev_growth": f"{growth:.0f}%",
        "margin": f"{r.uniform(18, 55) + sign * 3 * strength:.1f}%",
        "guid_lo": _money(guid_mid * 0.97), "guid_hi": _money(guid_mid * 1.03), "guid_change": f"{guid_change:.0f}%",
        "eps_guid": f"${eps_guid_old * (1 + sign * guid_change / 100):.2f}", "eps_guid_old": f"${eps_guid_old:.2f}",
        "deal": _money(deal), "premium": f"{15 + 45 * strength:.0f}%", "writedown": _money(deal * r.uniform(0.2, 0.6)),
        "acquirer": f"{r.choice(COMPANY_ROOTS)} {r.choice(('Holdings', 'Group', 'Partners', 'Capital'))}",
        "target": f"{r.choice(COMPANY_ROOTS)} {r.choice(sec['suffixes'])}",
        "rival": f"{r.choice([c for c in COMPANY_ROOTS if c not in company['name']])} {r.choice(sec['suffixes'])}",
        "hedge": f"is {r.choice(HEDGES)}", "source": r.choice(SOURCES),
        "broker": r.choice(BROKERS), "pt_old": f"${pt_old:.0f}", "pt_new": f"${pt_old * (1 + move):.0f}",
        "upside": f"{abs(move) * 100 + 5:.0f}%",
        "bps": str(r.choice((25, 50) if strength < 0.6 else (50, 75))),
        "cpi": f"{cpi_est - sign * (0.1 + 0.5 * strength):.1f}%", "cpi_est": f"{cpi_est:.1f}%",
        "jobs": f"{round(jobs_est * (1.3 + strength), -3):,.0f}", "jobs_small": f"{round(jobs_est * (0.5 - 0.4 * strength), -3):,.0f}",
        "jobs_est": f"{jobs_est:,}", "pmi": f"{51 + 4 * strength:.1f}", "pmi_low": f"{48 - 5 * strength:.1f}",
        "pmi_flat": f"{r.uniform(49.5, 50.5):.1f}", "months": str(r.randrange(6, 30)),
        "retail": f"{0.4 + 1.6 * strength:.1f}%",
        "buyback": _money(r.uniform(100, 8000) * (0.5 + strength)), "div_change": f"{3 + 20 * strength:.0f}%",
        "dividend": f"${r.uniform(0.05, 1.5):.2f}", "savings": _money(r.uniform(40, 900)),
        "cb": r.choice(("Central bank", "The central bank", "The rate-setting committee", "The policy board",
                        "The monetary policy committee")),
        "claims": f"{r.randrange(190, 260)},000",
        "person": person, "role": r.choice(ROLES), "weekday": r.choice(WEEKDAYS),
    }
    for slot, options in SYNONYMS.items():
        facts[slot] = r.choice(options)
    return facts
