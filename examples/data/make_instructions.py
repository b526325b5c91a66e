"""Write instruction-tuning demo data from the support tickets: prompt/response pairs and the same as chat messages.

    python examples/data/make_instructions.py

Two instruction kinds a support team would teach a model: route a ticket to its queue, and draft the
first line of a reply in the house style. Run make_support_tickets.py first.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

QUEUES = "billing, account_access, shipping, technical_issue, cancellation"
OPENERS = {
    "billing": "Thanks for flagging this charge: I've opened a billing review and will confirm the correction within two working days.",
    "account_access": "Sorry you're locked out: I've sent a secure sign-in link to the address on file, valid for 30 minutes.",
    "shipping": "Thanks for your patience: I've opened a trace with the courier and will update you within 24 hours.",
    "technical_issue": "Thanks for the details: I've logged this with our engineers and will share a workaround as soon as we have one.",
    "cancellation": "Understood: I've scheduled the cancellation and you won't be charged again; a confirmation email is on its way.",
}


def pairs(tickets: list[dict], rng: random.Random) -> list[dict]:
    rows = []
    for row in tickets:
        if rng.random() < 0.5:
            rows.append({"prompt": f"Route this support ticket to one queue ({QUEUES}). Answer with the queue name only.\n\nTicket: {row['text']}",
                         "response": row["label"]})
        else:
            rows.append({"prompt": f"Write the first sentence of a reply to this ticket, in our friendly house style.\n\nTicket: {row['text']}",
                         "response": OPENERS[row["label"]]})
    return rows


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(7)
    for split, source in (("train", "support_tickets_train.jsonl"), ("eval", "support_tickets_test.jsonl")):
        tickets = [json.loads(line) for line in (here / source).read_text(encoding="utf-8").splitlines()]
        rows = pairs(tickets, rng)
        with open(here / f"instructions_{split}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
        with open(here / f"chat_{split}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows:
                messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
                handle.write(json.dumps({"messages": messages}) + "\n")
        print(f"{split}: {len(rows)} instruction pairs (and as chat messages)")


if __name__ == "__main__":
    main()
