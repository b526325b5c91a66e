"""Write preference pairs for DPO and RLHF: for each support ticket, a concise helpful reply (chosen) and a
rambling or evasive one (rejected).

    python examples/data/make_preferences.py

The replies are hand-written for this project per queue; the rejected ones fail in the ways support
leads flag most: padding, vague promises, asking for what the customer already gave, blaming the customer.
Run make_support_tickets.py first. Train pairs come from the training tickets, eval pairs from the test ones.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CHOSEN = {
    "billing": [
        "Sorry about that. I've refunded the duplicate charge; it will be back on your card in 3-5 working days.",
        "Thanks for flagging it. I've corrected the invoice and emailed you the updated copy.",
        "You're right, that fee shouldn't be there. I've removed it and credited your account.",
    ],
    "account_access": [
        "I've sent a secure sign-in link to your email; it works for 30 minutes. Reply here if it doesn't arrive.",
        "I've unlocked your account. Please reset your password from the link I just emailed you.",
        "I've reset two-factor on your account, so you can sign in with your password and set it up again.",
    ],
    "shipping": [
        "I've opened a trace with the courier and will update you within 24 hours. If it's lost, we'll reship at no cost.",
        "Sorry it arrived damaged. A replacement ships today; no need to send the broken one back.",
        "I've updated the delivery address on your order; the courier has confirmed the change.",
    ],
    "technical_issue": [
        "Thanks for the details. Please update to the latest version, which fixes this crash; I'll check back tomorrow.",
        "Our engineers have reproduced it. As a workaround, export to CSV and print from there while we ship a fix.",
        "I've escalated this to our engineers with your logs and will share an update within one working day.",
    ],
    "cancellation": [
        "Done: your subscription is cancelled and you won't be charged again. A confirmation email is on its way.",
        "I've scheduled the cancellation for the end of this billing cycle and confirmed it by email.",
        "Your account is closed and your data will be deleted within 30 days, as you asked.",
    ],
}

REJECTED = [
    "Thank you so much for reaching out to us today, we really value you as a customer and we appreciate your patience. "
    "There are many reasons why something like this can happen and our team looks at every case individually, so it may "
    "take some time. Please rest assured that we are always working hard to improve our services for everyone.",
    "Hi! Could you please send us your account email, your order number and a detailed description of the problem? "
    "Once we have all the information we will look into it.",
    "We are sorry you feel this way. Our systems are working as designed, so this is most likely caused by something on "
    "your side. Please double-check your settings and try again.",
    "Thanks for your message. We'll look into it and get back to you at some point.",
    "I understand. Have you tried turning it off and on again? Many customers find that this helps in a lot of "
    "situations, and honestly it is usually the first thing we recommend for nearly every kind of issue that comes up.",
    "Unfortunately I can't help with that here. Please contact the relevant department.",
]


def pairs(tickets: list[dict], rng: random.Random) -> list[dict]:
    rows = []
    for row in tickets:
        prompt = f"Reply to this customer as a support agent.\n\nTicket: {row['text']}"
        rows.append({"prompt": prompt, "chosen": rng.choice(CHOSEN[row["label"]]), "rejected": rng.choice(REJECTED)})
    return rows


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(11)
    for split, source in (("train", "support_tickets_train.jsonl"), ("eval", "support_tickets_test.jsonl")):
        tickets = [json.loads(line) for line in (here / source).read_text(encoding="utf-8").splitlines()]
        rows = pairs(tickets, rng)
        with open(here / f"preferences_{split}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
        print(f"{split}: {len(rows)} preference pairs")


if __name__ == "__main__":
    main()
