"""Rows shaped like the real reference-system data, built in code (no copy of any dataset is stored).

``fingpt_rows`` builds FinGPT-Forecaster Dow30 rows (columns ``prompt, answer, period, label, symbol``) exactly the
way FinGPT's ``data.py`` (``gpt4_to_llama``) wraps them: ``[INST]<<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user}[/INST]``,
with the company introduction / weekly price move / headlines / basic financials / question layout of the
published rows. ``seed_rows`` builds the Llama-3.2 sentiment seed's instruction/input/output rows.
"""

from __future__ import annotations

from datetime import date, timedelta

from fintune.data.fingpt import B_INST, B_SYS, E_INST, E_SYS
from fintune.data.forecaster import SYSTEM_PROMPT

COMPANIES = {"AAPL": ("Apple Inc", "Technology", "1980-12-12", "NASDAQ NMS - GLOBAL MARKET"),
             "MSFT": ("Microsoft Corp", "Technology", "1986-03-13", "NASDAQ NMS - GLOBAL MARKET"),
             "JPM": ("JPMorgan Chase & Co", "Banking", "1969-03-05", "NEW YORK STOCK EXCHANGE, INC.")}
MOVES = ["Up by 1-2%", "Down by 2-3%", "Up by more than 5%", "Down by 0-1%", "Up by 3-4%", "Down by more than 5%"]


def fingpt_user(symbol: str, start: str, end: str, nxt: str, k: int) -> str:
    """The user part of one published prompt (layout of FinGPT's ``get_prompt_by_row`` / ``sample_news``)."""
    name, sector, ipo, exchange = COMPANIES[symbol]
    lo, hi = 150.0 + k, 152.5 + k
    return (f"[Company Introduction]:\n\n{name} is a leading entity in the {sector} sector. Incorporated and publicly "
            f"traded since {ipo}, the company has established its reputation as one of the key players in the market. "
            f"As of today, {name} has a market capitalization of 2771000.00 in USD, with 15634.23 shares outstanding."
            f"\n\n{name} operates primarily in the US, trading under the ticker {symbol} on the exchange {exchange}. "
            f"As a dominant force in the {sector} space, the company continues to innovate and drive progress within "
            f"the industry.\n\nFrom {start} to {end}, {symbol}'s stock price increased from {lo:.2f} to {hi:.2f}. "
            f"Company news during this period are listed below:\n\n[Headline]: {name} beats quarterly estimates "
            f"(week {k})\n[Summary]: Revenue rose 8% year over year; guidance was raised.\n\n[Headline]: Analysts lift "
            f"targets on {symbol}\n[Summary]: Two brokers raised price targets after the results.\n\n"
            f"Some recent basic financials of {symbol}, reported at {start}, are presented below:\n\n"
            f"[Basic Financials]:\n\ncurrentRatio: 0.94\nnetMargin: 0.25\nroeTTM: 1.47\n\n"
            f"Based on all the information before {end}, let's first analyze the positive developments and potential "
            f"concerns for {symbol}. Come up with 2-4 most important factors respectively and keep them concise. "
            f"Most factors should be inferred from company related news. Then make your prediction of the {symbol} "
            f"stock price movement for next week ({end} to {nxt}). Provide a summary analysis to support your "
            f"prediction.")


def fingpt_rows(weeks: int = 4, symbols: tuple[str, ...] = ("AAPL", "MSFT", "JPM")) -> list[dict[str, str]]:
    """``weeks`` consecutive weekly rows per symbol, published-row shaped, in (symbol, week) order."""
    rows, first = [], date(2023, 5, 7)
    for s_i, symbol in enumerate(symbols):
        for k in range(weeks):
            start = first + timedelta(weeks=k)
            end, nxt = start + timedelta(weeks=1), start + timedelta(weeks=2)
            move = MOVES[(k + s_i) % len(MOVES)]
            answer = (f"[Positive Developments]:\n1. Quarterly revenue beat estimates.\n2. Raised guidance.\n\n"
                      f"[Potential Concerns]:\n1. Regulatory scrutiny.\n2. Valuation is stretched.\n\n"
                      f"[Prediction & Analysis]:\nPrediction: {move}\nAnalysis: Momentum and revisions drive the "
                      f"call for week {k}.")
            user = fingpt_user(symbol, start.isoformat(), end.isoformat(), nxt.isoformat(), k)
            rows.append({"prompt": B_INST + B_SYS + SYSTEM_PROMPT + E_SYS + user + E_INST, "answer": answer,
                         "period": f"{end.isoformat()} to {nxt.isoformat()}", "label": move.lower(),
                         "symbol": symbol})
    return rows


SEED_INSTRUCTION = "Analyze the sentiment of this financial news and predict market impact:"
SEED_ROWS = [
    ("Apple reports record Q4 earnings, beating expectations by 15%",
     "SENTIMENT: BULLISH\nCONFIDENCE: HIGH\nANALYSIS: Stock likely to rise 3-5% in next session"),
    ("Tesla recalls 2 million vehicles over an autopilot defect",
     "SENTIMENT: BEARISH\nCONFIDENCE: MEDIUM\nANALYSIS: Shares may fall 2-4% on the news"),
    ("Microsoft schedules its annual shareholder meeting for December",
     "SENTIMENT: NEUTRAL\nCONFIDENCE: LOW\nANALYSIS: No material price impact expected"),
    ("JPMorgan raises its dividend and announces a buyback",
     "SENTIMENT: BULLISH\nCONFIDENCE: 0.8\nANALYSIS: Shareholder returns support the stock"),
]


def seed_rows() -> list[dict[str, str]]:
    """The seed's instruction/input/output rows (its own example first)."""
    return [{"instruction": SEED_INSTRUCTION, "input": text, "output": out} for text, out in SEED_ROWS]
