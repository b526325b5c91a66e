"""Write the raw-text demo corpus for continued pre-training (the cpt recipe): the kind of domain text a shop's
support team has (product notes, troubleshooting guides, policy pages), with no prompts and no labels:

    python examples/data/make_domain_text.py

- domain_train.txt: the policy documents of examples/rag/docs, plus generated product and troubleshooting notes.
- domain_eval.txt: two held-out policy documents and notes on products the training text never names, less any
  note that adaptkit's leakage check finds to be a training paragraph's near twin: the eval perplexity is measured
  on unseen text of the same domain.

Paragraphs are separated by a blank line (one row each when read).
"""

from __future__ import annotations

import random
from pathlib import Path

HELD_OUT_DOCS = ("warranty.md", "trade_in.md")
KINDS = {
    "headphones": ("over-ear", "on-ear", "in-ear"), "speaker": ("portable", "bookshelf", "waterproof"),
    "smartwatch": ("fitness", "classic", "outdoor"), "tablet": ("10-inch", "8-inch", "12-inch"), "charger": ("wall", "wireless", "car"),
}
NAMES = ("Aria", "Bolt", "Cirrus", "Drift", "Echo", "Flint", "Glide", "Halo", "Ion", "Juno", "Kite", "Lumen", "Mesa", "Nova",
         "Orbit", "Pulse", "Quill", "Ridge", "Sol", "Tide", "Umbra", "Vale", "Wren", "Zephyr")
PROBLEMS = {
    "headphones": [("one ear cup is silent", "clean the connector, then reset the pairing by holding the power button for 10 seconds"),
                   ("the noise cancelling hisses", "update the firmware from the app and switch the cancelling level to adaptive")],
    "speaker": [("it will not pair", "forget the speaker in your phone's Bluetooth list and hold play and volume up for 5 seconds"),
                ("the bass distorts at high volume", "turn on the loudness limiter in the app's sound settings")],
    "smartwatch": [("the battery drains overnight", "turn off the always-on display and raise the heart-rate interval to 10 minutes"),
                   ("steps are not counted", "set the wrist it is worn on under Settings and restart the watch")],
    "tablet": [("the screen does not respond to touch", "remove the screen protector and recalibrate under Display > Touch"),
               ("it charges slowly", "use the supplied 30 W adapter; a phone charger gives a third of the speed")],
    "charger": [("the light blinks orange", "the device is too warm: unplug it for ten minutes and remove any thick case"),
                ("it gets hot", "keep it out of direct sun and away from metal objects between the coil and the phone")],
}


def docs(folder: Path, held: bool) -> list[str]:
    out = []
    for doc in sorted(folder.glob("*.md")):
        if (doc.name in HELD_OUT_DOCS) != held:
            continue
        heading = ""
        for block in (part.strip() for part in doc.read_text(encoding="utf-8").split("\n\n")):
            if block.startswith("#"):
                heading = block.lstrip("# ").strip() + ". "
            elif block:
                out.append(heading + " ".join(block.split()))
                heading = ""
    return out


def product_notes(name: str, kind: str, rng: random.Random) -> list[str]:
    style = rng.choice(KINDS[kind])
    battery, weight, price = rng.choice((8, 12, 20, 30, 40)), rng.choice((45, 120, 250, 480, 610)), rng.choice((29, 49, 79, 129, 199, 349))
    colour = rng.choice(("graphite", "sand", "forest green", "navy", "white", "coral"))
    problem, fix = rng.choice(PROBLEMS[kind])
    notes = [
        f"The {name} is a {style} {kind} in {colour}. It weighs {weight} g and runs for about {battery} hours on a full charge. "
        f"It sells for ${price} and comes with a USB-C cable{' and a travel pouch' if rng.random() < 0.5 else ''}.",
        f"Troubleshooting the {name}: if {problem}, {fix}. If that does not help, contact support with the serial number "
        f"printed {rng.choice(('under the left ear cup', 'on the base', 'on the back', 'inside the box lid'))}.",
        f"Caring for the {name}: wipe it with a dry cloth, keep it away from temperatures above 45 degrees, and store it "
        f"{rng.choice(('at half charge', 'in its pouch', 'switched off'))} if you will not use it for a month.",
    ]
    if rng.random() < 0.6:
        notes.append(f"Customers often ask whether the {name} works with older phones. It does: it needs Bluetooth "
                     f"{rng.choice(('4.2', '5.0', '5.3'))} or later, and the app supports phones from the last six years.")
    return notes


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(5)
    products = [(f"{name} {kind.title()}", kind) for name in NAMES for kind in KINDS]
    rng.shuffle(products)
    held = products[:20]
    train = docs(here.parent / "rag" / "docs", held=False) + [p for name, kind in products[20:] for p in product_notes(name, kind, rng)]
    from adaptkit.runners.data import overlap  # the leakage check adaptkit runs: no held-out paragraph is a training one's twin

    notes = [p for name, kind in held for p in product_notes(name, kind, rng)]
    found = overlap(train, notes)
    twins = set(found["first"]) if found["rows"] <= 5 else {i for i, note in enumerate(notes) if overlap(train, [note])["rows"]}
    test = docs(here.parent / "rag" / "docs", held=True) + [note for i, note in enumerate(notes) if i not in twins]
    rng.shuffle(train)
    (here / "domain_train.txt").write_text("\n\n".join(train) + "\n", encoding="utf-8")
    (here / "domain_eval.txt").write_text("\n\n".join(test) + "\n", encoding="utf-8")
    print(f"{len(train)} training and {len(test)} held-out paragraphs")


if __name__ == "__main__":
    main()
