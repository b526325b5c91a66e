"""Write the support-ticket demo data: short customer messages labeled with the queue they belong in.

    python examples/data/make_support_tickets.py

Each ticket joins a greeting, a problem statement and a detail or request, all hand-written for this
project, with order numbers, dates, amounts and devices filled in at random (seeded, so the files are
reproducible). Five queues; 80 tickets each; 64 go to train, 16 to the held-out test split. The test
tickets use problem statements that never appear in training (the last three of each queue), so the
test measures how well a model generalises to new phrasings, not how well it remembers templates.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

GREETINGS = ["", "Hi, ", "Hello, ", "Hey team, ", "Good morning, ", "Hi there. ", "Dear support, ", "Urgent: ", "Quick question: ", "Hello again, "]

PROBLEMS = {
    "billing": [
        "I was charged twice for order {order}.",
        "my card was billed {amount} but my plan costs less than that.",
        "the invoice for {month} shows a fee I never agreed to.",
        "I see a pending charge of {amount} after I downgraded.",
        "your system charged my old credit card instead of the new one.",
        "the VAT on invoice {invoice} is wrong for a business account.",
        "I was billed for {seats} seats but we only use two.",
        "the discount code {code} was not applied to my last payment.",
        "my bank flagged a charge from you that I don't recognise.",
        "I paid the annual plan but got billed monthly again in {month}.",
        "there's a late fee on my account even though I paid on {date}.",
        "I need a copy of the receipt for payment {invoice}.",
        "the price went up without any notice this {month}.",
        "my refund of {amount} for the duplicate payment never arrived.",
        "I can't change the billing address printed on invoices.",
        "the trial was supposed to be free but I got charged {amount}.",
    ],
    "account_access": [
        "I can't log in, it keeps saying my password is wrong.",
        "the password reset email never arrives.",
        "my account got locked after too many attempts.",
        "two-factor codes from the app are rejected every time.",
        "I lost my phone and can't get the 2FA code.",
        "I changed my email address and now can't sign in.",
        "the login page just reloads after I enter my details.",
        "single sign-on with our company account stopped working on {date}.",
        "I get 'session expired' every few minutes.",
        "someone else may have accessed my account, I got a login alert from {city}.",
        "the reset link says it has expired even though I clicked it right away.",
        "I need to transfer the account to a colleague who left the admin role.",
        "my username was changed and I don't know the new one.",
        "the verification SMS goes to an old number ending in {digits}.",
        "I was logged out on all devices and can't get back in.",
        "our new team member never received the invite to join the workspace.",
    ],
    "shipping": [
        "order {order} still hasn't arrived after {days} days.",
        "the tracking number for my package hasn't updated since {date}.",
        "my parcel was delivered to the wrong address.",
        "the courier says delivered but nothing was at my door.",
        "I received the wrong item in order {order}.",
        "the box arrived damaged and the {product} inside is cracked.",
        "I need to change the delivery address for order {order}.",
        "can I get express shipping on an order I already placed?",
        "part of my order is missing, only {n} of {m} items came.",
        "customs is holding my package and asking for a fee.",
        "the estimated delivery keeps moving later, now it says {date}.",
        "I was not home and the courier left no card, where is my parcel?",
        "my order shows shipped but there is no tracking link.",
        "the pickup point you chose for {order} is closed for renovation.",
        "the {product} arrived without the charger that was listed.",
        "shipping to {city} was quoted at one price and charged at another.",
    ],
    "technical_issue": [
        "the app crashes every time I open the settings page.",
        "exporting a report to PDF gives a blank file.",
        "the sync between my phone and laptop stopped on {date}.",
        "I get error {error} when uploading files larger than {size} MB.",
        "the dashboard is stuck loading since the last update.",
        "notifications stopped working on my {device}.",
        "the search returns no results even for items I can see.",
        "the API returns 500 errors for the /orders endpoint.",
        "the {product} won't pair over Bluetooth anymore.",
        "dark mode makes the text unreadable in the editor.",
        "the integration with our calendar duplicates every event.",
        "after updating to version {version} the app won't start on {device}.",
        "the webhook deliveries are delayed by over an hour.",
        "charts on the analytics page show last month's data only.",
        "the firmware update for my {product} failed halfway.",
        "the desktop app uses 100% CPU after about ten minutes.",
    ],
    "cancellation": [
        "I want to cancel my subscription before the next renewal.",
        "please close my account and delete my data.",
        "how do I stop the automatic renewal on {date}?",
        "we're moving to another provider, please end our contract.",
        "I'd like to cancel order {order} before it ships.",
        "I no longer need the premium plan, cancel it at the end of this cycle.",
        "cancel the extra {seats} seats we added last month.",
        "I signed up by mistake, please cancel and don't charge me.",
        "our team is shutting down, we need to terminate the account.",
        "I tried to cancel in the app but the button does nothing.",
        "please confirm my cancellation request from {date} went through.",
        "I want to end the trial now so it doesn't convert to a paid plan.",
        "unsubscribe me from the monthly box starting {month}.",
        "cancel my membership, I'm moving abroad to {city}.",
        "we need to cancel the annual plan and get a prorated refund.",
        "stop my subscription, the service isn't what I expected.",
    ],
}

DETAILS = {
    "billing": ["Can you refund the difference?", "Please fix the invoice.", "My account email is {email}.",
                "I've attached the bank statement.", "This is the second time this happened.", "Please explain the charge.",
                "We need this sorted before our accounts close on Friday.", ""],
    "account_access": ["I've tried three different browsers.", "My account email is {email}.", "Please help me get back in.",
                       "I need access today for a client meeting.", "I already cleared the cookies and cache.", "Can you unlock it?", ""],
    "shipping": ["Can you check with the courier?", "Please send a replacement.", "The order was a gift and I need it by {date}.",
                 "My postcode is {postcode}.", "I'd like a refund if it can't be found.", "What are my options?", ""],
    "technical_issue": ["I'm on {device} with the latest version.", "Steps: open the app, go to settings, it closes.",
                        "Screenshots attached.", "This blocks our whole team.", "Reinstalling didn't help.", "Is there a workaround?", ""],
    "cancellation": ["Please confirm by email.", "My account email is {email}.", "Make sure I'm not billed again.",
                     "Thanks for the service so far.", "I don't want any retention offers, just cancel.", "What do I need to do?", ""],
}

FILL = {
    "order": lambda r: f"#{r.randint(10000, 99999)}",
    "invoice": lambda r: f"INV-{r.randint(1000, 9999)}",
    "amount": lambda r: f"${r.choice([9.99, 19, 24.50, 49, 79.99, 120, 199, 349])}",
    "month": lambda r: r.choice(["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]),
    "date": lambda r: f"{r.randint(1, 28)} {r.choice(['March', 'April', 'May', 'June', 'July', 'August'])}",
    "seats": lambda r: str(r.randint(3, 25)),
    "code": lambda r: r.choice(["SPRING20", "WELCOME10", "TEAM15", "LOYAL5"]),
    "city": lambda r: r.choice(["Lisbon", "Toronto", "Nairobi", "Osaka", "Lyon", "Denver", "Krakow", "Melbourne"]),
    "digits": lambda r: str(r.randint(10, 99)),
    "days": lambda r: str(r.randint(6, 21)),
    "product": lambda r: r.choice(["headphones", "smart speaker", "keyboard", "tablet", "fitness tracker", "camera"]),
    "n": lambda r: str(r.randint(1, 2)),
    "m": lambda r: str(r.randint(3, 5)),
    "error": lambda r: r.choice(["E-4031", "413", "ERR_UPLOAD_7", "0x80070005"]),
    "size": lambda r: str(r.choice([10, 25, 50, 100])),
    "device": lambda r: r.choice(["an iPhone 13", "a Pixel 8", "Windows 11", "macOS Sonoma", "an iPad", "Ubuntu 24.04"]),
    "version": lambda r: f"{r.randint(3, 5)}.{r.randint(0, 9)}.{r.randint(0, 9)}",
    "email": lambda r: f"{r.choice(['sam', 'priya', 'li.wei', 'maria', 'j.okafor', 'tom'])}@{r.choice(['example.com', 'mail.test', 'acme.io'])}",
    "postcode": lambda r: f"{r.randint(10000, 99999)}",
}


def fill(text: str, rng: random.Random) -> str:
    for key, make in FILL.items():
        token = "{" + key + "}"
        while token in text:
            text = text.replace(token, make(rng), 1)
    return text


HELD_OUT = 3  # problem statements per queue kept for the test split


def ticket(label: str, rng: random.Random, test: bool) -> str:
    greeting = rng.choice(GREETINGS)
    problems = PROBLEMS[label][-HELD_OUT:] if test else PROBLEMS[label][:-HELD_OUT]
    problem = fill(rng.choice(problems), rng)
    problem = problem[0].upper() + problem[1:] if not greeting or greeting.endswith((". ", ": ")) else problem
    detail = fill(rng.choice(DETAILS[label]), rng)
    return " ".join(part for part in (greeting.strip(), problem, detail) if part)


def main() -> None:
    rng = random.Random(20261129)
    here = Path(__file__).parent
    train, test = [], []
    for label in PROBLEMS:
        for split, count in ((train, 64), (test, 16)):
            seen: set[str] = set()
            while len(seen) < count:
                text = ticket(label, rng, test=split is test)
                if text not in seen:
                    seen.add(text)
                    split.append({"text": text, "label": label})
    rng.shuffle(train)
    rng.shuffle(test)
    for name, rows in (("support_tickets_train.jsonl", train), ("support_tickets_test.jsonl", test)):
        with open(here / name, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    print(f"wrote {len(train)} train and {len(test)} test tickets over {len(PROBLEMS)} queues")


if __name__ == "__main__":
    main()
