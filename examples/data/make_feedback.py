"""Write feedback_train.jsonl and feedback_eval.jsonl: unpaired thumbs-up / thumbs-down ratings of support replies, the
data KTO learns from (recipe kto). Each preference pair of preferences_*.jsonl gives one rated reply, the good one
(label true) or the bad one (label false), so no prompt appears with both: what a product's feedback button collects.
Deterministic: python examples/data/make_feedback.py rewrites the same files."""

import json
import random
from pathlib import Path


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(7)
    for source, target in (("preferences_train.jsonl", "feedback_train.jsonl"), ("preferences_eval.jsonl", "feedback_eval.jsonl")):
        rows = [json.loads(line) for line in (here / source).read_text(encoding="utf-8").splitlines() if line.strip()]
        with open(here / target, "w", encoding="utf-8") as handle:
            for row in rows:
                liked = rng.random() < 0.6  # more thumbs-up than down, as product feedback usually is
                rated = {"prompt": row["prompt"], "completion": row["chosen"] if liked else row["rejected"], "label": liked}
                handle.write(json.dumps(rated) + "\n")


if __name__ == "__main__":
    main()
