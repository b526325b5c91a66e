"""Write arithmetic_train.jsonl and arithmetic_eval.jsonl: word problems with one checkable integer answer each, for
RL from verifiable rewards (recipe rlvr_math). Deterministic: python examples/data/make_arithmetic.py rewrites the
same files. Each row: prompt (asks for the working, then `#### <number>`), answer (the integer), and the operation."""

import json
import random
from pathlib import Path

NAMES = ["Maya", "Tomas", "Aiko", "Priya", "Jonas", "Fatima", "Luca", "Grace", "Omar", "Elena", "Kwame", "Sofia", "Ravi", "Hannah"]
ITEMS = [("apples", "basket"), ("stickers", "album"), ("marbles", "jar"), ("books", "shelf"), ("coins", "wallet"),
         ("pencils", "box"), ("cookies", "tin"), ("stamps", "folder"), ("shells", "bucket"), ("cards", "deck")]
INSTRUCTION = "Solve the problem. Show a short working, then give the final answer on its own line as `#### <number>`."


def add(rng):
    name, (item, place) = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(3, 60), rng.randint(2, 45)
    return f"{name} has {a} {item} in a {place} and is given {b} more. How many {item} does {name} have now?", a + b, "add"


def subtract(rng):
    name, (item, _) = rng.choice(NAMES), rng.choice(ITEMS)
    a = rng.randint(20, 90)
    b = rng.randint(2, a - 1)
    return f"{name} had {a} {item} and gave {b} of them away. How many {item} are left?", a - b, "subtract"


def multiply(rng):
    name, (item, place) = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(2, 12), rng.randint(3, 15)
    return f"{name} fills {a} {place}s with {b} {item} each. How many {item} is that in total?", a * b, "multiply"


def divide(rng):
    name, (item, _) = rng.choice(NAMES), rng.choice(ITEMS)
    b, q = rng.randint(2, 9), rng.randint(3, 14)
    return f"{name} shares {b * q} {item} equally among {b} friends. How many {item} does each friend get?", q, "divide"


def two_step(rng):
    name, (item, _) = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, c = rng.randint(10, 50), rng.randint(2, 9), rng.randint(1, 9)
    return (f"{name} buys {b} packs of {item} with {a} in each pack, then loses {c} of them. How many {item} does {name} have?",
            a * b - c, "two_step")


def price(rng):
    name = rng.choice(NAMES)
    unit, count, paid = rng.randint(2, 9), rng.randint(2, 8), 100
    return (f"{name} buys {count} notebooks at {unit} dollars each and pays with a {paid}-dollar bill. How much change, in dollars, "
            f"does {name} get?", paid - unit * count, "price")


MAKERS = [add, subtract, multiply, divide, two_step, price]


def rows(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < count:
        question, answer, kind = rng.choice(MAKERS)(rng)
        if question in seen:
            continue
        seen.add(question)
        out.append({"prompt": f"{INSTRUCTION}\n\nProblem: {question}\n", "answer": str(answer), "operation": kind})
    return out


def main() -> None:
    here = Path(__file__).parent
    everything = rows(2026, 480)
    train = everything[:320]
    from adaptkit.runners.data import overlap  # the leakage check adaptkit runs: no held-out row may be a training row's twin

    prompts = [row["prompt"] for row in train]
    held = [row for row in everything[320:] if not overlap(prompts, [row["prompt"]])["rows"]][:40]
    for name, part in (("arithmetic_train.jsonl", train), ("arithmetic_eval.jsonl", held)):
        with open(here / name, "w", encoding="utf-8") as handle:
            for row in part:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
