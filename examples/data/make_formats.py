"""Write the same support team's data in the three shapes users bring it in, for the mixed-sources recipe (sft_mix):

    python examples/data/make_formats.py

- formats/alpaca.json: Alpaca (instruction / input / output), a JSON array: pull the order number, email and date out of
  a ticket into one line a dashboard can show.
- formats/sharegpt.json: ShareGPT (conversations of from / value), two exchanges each: the first reply, then the
  customer's follow-up question and its answer.
- formats/openai_chat.jsonl: OpenAI chat messages (role / content) with a system message: route the ticket.

Each is drawn from support_tickets_train.jsonl (run make_support_tickets.py first), so their tickets are disjoint from
the held-out chat_eval.jsonl.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from make_instructions import OPENERS  # the house style's first lines, shared with the instruction data

FOLLOW_UPS = {
    "billing": [("When will I see the money back?", "Refunds reach your card 3 to 5 working days after the review closes."),
                ("Will this happen again next month?", "No: once the review closes, the corrected amount is what we bill.")],
    "account_access": [("The link expired, what now?", "Reply here and I'll send a fresh one; each link lasts 30 minutes."),
                       ("Can I turn on two-factor sign-in?", "Yes: under Settings > Security, after you're back in.")],
    "shipping": [("Can you send a replacement instead?", "Yes: if the trace finds nothing in 24 hours, a replacement ships free."),
                 ("Who is the courier?", "It's with our regional partner; the trace number will be in my next update.")],
    "technical_issue": [("Is there anything I can try meanwhile?", "Clearing the app's cache and signing in again fixes most cases."),
                        ("How will I know it's fixed?", "I'll write to you here the moment the fix is live.")],
    "cancellation": [("Do I keep access until the period ends?", "Yes: everything works until the end of the paid period."),
                     ("Can I come back later?", "Any time: your settings are kept for 12 months.")],
}
ROUTER = "You route support tickets to one queue: billing, account_access, shipping, technical_issue or cancellation. Answer with the queue name only."


def details(text: str) -> str:
    """The facts a dashboard line shows: order number, email, date; 'none' when the ticket has none."""
    found = []
    order = re.search(r"#(\d+)", text)
    email = re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text)
    date = re.search(r"\b(\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\w*)", text)
    if order:
        found.append(f"order {order.group(1)}")
    if email:
        found.append(f"email {email.group(0).rstrip('.')}")
    if date:
        found.append(f"date {date.group(1)}")
    return "; ".join(found) or "none"


def main() -> None:
    here = Path(__file__).parent
    tickets = [json.loads(line) for line in (here / "support_tickets_train.jsonl").read_text(encoding="utf-8").splitlines()]
    rng = random.Random(11)
    rng.shuffle(tickets)
    out = here / "formats"
    out.mkdir(exist_ok=True)
    alpaca = [{"instruction": "List the order number, email and date this ticket mentions, or none.", "input": t["text"],
               "output": details(t["text"])} for t in tickets[:120]]
    sharegpt = []
    for t in tickets[120:240]:
        question, answer = rng.choice(FOLLOW_UPS[t["label"]])
        sharegpt.append({"conversations": [{"from": "human", "value": t["text"]}, {"from": "gpt", "value": OPENERS[t["label"]]},
                                           {"from": "human", "value": question}, {"from": "gpt", "value": answer}]})
    chat = [{"messages": [{"role": "system", "content": ROUTER}, {"role": "user", "content": t["text"]},
                          {"role": "assistant", "content": t["label"]}]} for t in tickets[240:]]
    (out / "alpaca.json").write_text(json.dumps(alpaca, indent=1) + "\n", encoding="utf-8")
    (out / "sharegpt.json").write_text(json.dumps(sharegpt, indent=1) + "\n", encoding="utf-8")
    (out / "openai_chat.jsonl").write_text("".join(json.dumps(row) + "\n" for row in chat), encoding="utf-8")
    print(f"alpaca {len(alpaca)}, sharegpt {len(sharegpt)}, openai_chat {len(chat)} rows in {out}")


if __name__ == "__main__":
    main()
