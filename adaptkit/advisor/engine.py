"""Apply the rules table to a profile: gate, score, rank, explain."""

from __future__ import annotations

from dataclasses import dataclass, field

from adaptkit.methods.catalogue import cite, methods
from adaptkit.advisor.profile import Profile
from adaptkit.advisor.rules import Rule, describe, matches, rules


@dataclass
class Firing:
    """A rule that fired, what it did, and why."""

    rule: Rule
    effects: list[str]
    reason: str

    @property
    def condition(self) -> str:
        return describe(self.rule.when) if self.rule.kind != "memory" else "open weights, a GPU and a known model size"


@dataclass
class Recommendation:
    method: str
    name: str
    score: float
    rationale: list[str]
    sources: list[str]
    feasibility: str = ""
    why: list[str] = field(default_factory=list)  # short "+4 Behavior with data" items for the table

    def to_dict(self) -> dict:
        return {"method": self.method, "name": self.name, "score": self.score,
                "rationale": self.rationale, "sources": self.sources}


@dataclass
class Advice:
    profile: Profile
    recommendations: list[Recommendation]
    ruled_out: dict[str, list[str]]
    combine: list[str]
    firings: list[Firing]
    notes: list[str] = field(default_factory=list)
    hardware: dict | None = None  # the GPUs detected for it (adaptkit.advise sets it)
    evidence: dict | None = None  # what the ledger measured on the profile's data, and how it ranked (advisor.evidence)

    def to_dict(self) -> dict:
        """The `advise --json` shape."""
        profile = self.profile.model_dump()
        if self.hardware is not None:
            profile["hardware"] = self.hardware
        return {
            "profile": profile,
            "recommendations": [rec.to_dict() for rec in self.recommendations],
            "ruled_out": [{"method": m, "reasons": reasons} for m, reasons in self.ruled_out.items()],
            "combine": self.combine,
            "notes": self.notes,
            "evidence": self.evidence,
        }


ASSUMED_API_WINDOW = 128_000  # closed API models whose window is not given: today's common floor (GPT-4o, Claude, Gemini hold more)
ANSWER_ROOM = 4_000  # tokens kept free for the question, the instructions and the answer


def context_window(profile: Profile) -> int | None:
    if profile.context_window_tokens:
        return profile.context_window_tokens
    return ASSUMED_API_WINDOW if profile.weight_access != "open" else None


def facts_of(profile: Profile) -> dict:
    """Profile fields plus the derived facts rules may test."""
    facts = profile.model_dump()
    facts["vram_total_gb"] = profile.vram_total_gb
    facts["has_gpu"] = profile.vram_total_gb > 0
    window = context_window(profile)
    facts["context_window_tokens"] = window
    facts["corpus_fits_context"] = (None if window is None or profile.corpus_tokens is None
                                    else profile.corpus_tokens + ANSWER_ROOM <= window)
    facts["rl_from_rewards"] = profile.rl_from_rewards
    return facts


def context_notes(profile: Profile) -> list[str]:
    """What the corpus-in-the-prompt question assumed about the window, said."""
    if profile.goal != "knowledge" or profile.corpus_tokens is None:
        return []
    if profile.context_window_tokens is None and profile.weight_access != "open":
        return [f"context window not given: assumed {ASSUMED_API_WINDOW:,} tokens for the API model (set context_window_tokens)"]
    if context_window(profile) is None:
        return ["context window unknown: give context_window_tokens (or a model adaptkit knows) to weigh putting the whole corpus "
                "in the prompt"]
    return []


def _fill(template: str, facts: dict) -> str:
    try:
        return template.format_map(facts)
    except (KeyError, ValueError, TypeError, IndexError):
        return template


def _signed(weight: float) -> str:
    return f"{weight:+g}"


def _architecture(profile: Profile):
    """The profile's model for the memory estimate: a built-in or local config, else a Llama-style model of its size."""
    from adaptkit.estimator.architectures import for_model

    return for_model(profile.model, profile.model_params_b, profile.model_active_params_b)


def _memory(rule: Rule, profile: Profile, feasibility: dict[str, str]):
    """Yield (method, weight or None for a rule-out, reason) from the memory estimator."""
    from dataclasses import replace

    from adaptkit.estimator.fit import suggest
    from adaptkit.estimator.memory import estimate_memory
    from adaptkit.methods.registry import setup_for

    if profile.weight_access != "open" or profile.vram_total_gb <= 0:
        return
    arch = _architecture(profile)
    if arch is None:
        return
    device, gpus = profile.gpu_vram_gb, profile.num_gpus
    where = f"{gpus} x {device:g} GB"
    facts = facts_of(profile)
    for method, fields in rule.setups.items():
        for fact, changes in rule.setups_if.items():
            fields = {**fields, **(changes.get(method, {}) if facts.get(fact) else {})}
        setup = setup_for(method, num_gpus=gpus, **{**rule.defaults, **fields}).resolved()
        # On several GPUs, full weights are always sharded; adapters shard their 16-bit base when it does not fit replicated.
        sharded = gpus > 1 and (setup.trains_all_weights or estimate_memory(arch, setup).peak_gb > device)
        sharding = "zero3" if sharded else "none"
        setup = replace(setup, sharding=sharding)
        kind = "full weights" if setup.adapter == "none" else setup.adapter.replace("_", " ")
        how = (f"{kind}, {setup.precision}, batch {setup.batch_size} x "
               f"{setup.seq_len} tokens{', checkpointing' if setup.gradient_checkpointing else ''}"
               f"{', ZeRO-3 over ' + str(gpus) + ' GPUs' if sharding != 'none' else ''}")
        peak = estimate_memory(arch, setup).peak_gb
        if peak <= device:
            feasibility[method] = f"fits (~{peak:.0f}/{device:g} GB)"
            said = f"fits: ~{peak:.1f} GB per GPU on {where} ({how})"
            if setup.objective == "preference" and setup.adapter == "lora":  # say it runs with LoRA when all weights would not fit
                full = estimate_memory(arch, replace(setup, adapter="none", precision=None,
                                                     sharding="zero3" if gpus > 1 else "none").resolved()).peak_gb
                if full > device:
                    feasibility[method] = f"with LoRA (~{peak:.0f}/{device:g} GB)"
                    said = (f"runs with LoRA (the emitted recipe has a lora block; the reference is the base with the adapter "
                            f"off): ~{peak:.1f} GB per GPU on {where} ({how}); all weights would need ~{full:.0f} GB")
            yield method, 0.0, said
            continue
        changes, verdict = suggest(arch, setup, device, profile.gpu_kind)
        same = [c for c in changes if c.setup.method == method and c.setup.adapter == setup.adapter and c.setup.num_gpus == gpus]
        if same:
            change = same[0]
            feasibility[method] = f"with {change.short} (~{change.peak_gb:.0f}/{device:g} GB)"
            yield method, rule.penalty, (f"fits only with {change.description}: ~{change.peak_gb:.1f} GB per GPU on {where} "
                                         f"(~{peak:.0f} GB as {how})")
            continue
        feasibility[method] = "does not fit"
        other = f"; it would fit as {changes[0].description}" if changes else ""
        yield method, None, f"does not fit: ~{peak:.0f} GB per GPU ({how}) on {where}{other}" + (f"; {verdict}" if verdict else "")


def _cost(rule: Rule, profile: Profile, ruled_out: dict):
    """Yield (method, note): what few-shot demonstrations cost a day, priced input and output apart, against the one-time
    cost of the training method that would drop them, when that method is still possible."""
    from adaptkit.advisor.profile import api_price
    from adaptkit.estimator.architectures import from_params
    from adaptkit.estimator.compute import estimate_time, find_gpu
    from adaptkit.methods.registry import setup_for

    a = rule.assume
    per_day = a["requests_per_day"][profile.inference_volume]
    open_weights = profile.weight_access == "open"
    price_in = profile.usd_per_1m_input_tokens
    price_out = profile.usd_per_1m_output_tokens
    said = []
    if price_in is None:
        price_in = a["usd_per_1m_input"]
        said.append(f"${price_in:g} per 1M input tokens assumed" + (" (self-served tokens cost about as much)" if open_weights
                                                                     else ": set usd_per_1m_input_tokens to your model's price"))
    if price_out is None:
        price_out = price_in * a.get("output_price_ratio", 4)
        said.append(f"output assumed at {a.get('output_price_ratio', 4):g}x the input price")
    extra = a["shots"] * a["tokens_per_example"]
    demos = extra * per_day * price_in / 1e6
    base = per_day * (a.get("prompt_tokens", 300) * price_in + a.get("output_tokens", 150) * price_out) / 1e6
    text = (f"{a['shots']} demonstrations add ~{extra} input tokens a request: at ~{per_day:,} requests a day that is ~${demos:,.2f} a day "
            f"on top of ~${base:,.2f} for the requests themselves ({a.get('prompt_tokens', 300)} input + {a.get('output_tokens', 150)} "
            f"output tokens at ${price_in:g} / ${price_out:g} per 1M)" + (f"; {'; '.join(said)}" if said else ""))
    against = a["against"]
    if against in ruled_out:
        pass  # never argue from a method this profile cannot use
    elif profile.weight_access == "closed_api_ft":
        tokens = profile.labeled_examples * a.get("train_tokens_per_example", 128) * a.get("epochs", 3)
        found = api_price(profile.api_model or profile.model or "")
        if found and "training" in found[1]:
            once = tokens * found[1]["training"] / 1e6
            days = once / demos if demos else float("inf")
            text += (f"; a vendor tuning job on your {profile.labeled_examples:,} examples (~{tokens / 1e6:.1f}M training tokens) costs "
                     f"~${once:,.2f} once at ${found[1]['training']:g} per 1M training tokens (`{found[0]}`, checked {found[2]}; "
                     f"{'pays for itself within a day' if days < 1 else f'pays for itself in ~{days:,.0f} days'})")
        else:
            text += (f"; a vendor tuning job trains on ~{tokens / 1e6:.1f}M tokens: weigh it at your vendor's training price "
                     "(tuned models are often billed higher per token too)")
    else:
        arch = _architecture(profile) if open_weights else None
        if arch is None and profile.model_params_b is None:
            arch = from_params(7)  # size unknown: a 7B open model as the alternative
        if arch is not None:
            tokens = profile.labeled_examples * a.get("train_tokens_per_example", 128) * a.get("epochs", 3)
            timing = estimate_time(arch, setup_for(against), tokens, find_gpu(a.get("gpu", "A100-80GB")), None)
            if timing.cost_usd:
                low, high = timing.cost_usd["low"], timing.cost_usd["high"]
                days = high / demos if demos else float("inf")
                cost = "under $0.01" if high < 0.01 else f"~${low:,.2f}-{high:,.2f}"  # never "$0.00-0.00"
                text += (f"; a LoRA run on your {profile.labeled_examples:,} examples costs {cost} once "
                         f"({'pays for itself within a day' if days < 1 else f'pays for itself in ~{days:,.0f} days'})")
    for method in rule.note:
        if method not in ruled_out:
            yield method, text


def advise(profile: Profile, notes: list[str] | None = None) -> Advice:
    """Rank every method for `profile`, or rule it out, with the rules that decided it."""
    catalogue = methods()
    facts = facts_of(profile)
    scores = {method: 0.0 for method in catalogue}
    reasons: dict[str, list[tuple[float | None, str, Rule]]] = {method: [] for method in catalogue}
    out: dict[str, list[str]] = {}
    combine_choices: list[list[str]] = []
    firings: list[Firing] = []
    feasibility: dict[str, str] = {}

    for rule in rules():
        if rule.kind == "memory":
            effects = []
            for method, weight, text in _memory(rule, profile, feasibility):
                if weight is None:
                    out.setdefault(method, []).append(f"{text} [{rule.id}]")
                    effects.append(f"rules out {method}")
                else:
                    scores[method] += weight
                    reasons[method].append((weight, text, rule))
                    effects.append(f"{_signed(weight)} {method}" if weight else f"fits {method}")
            if effects:
                firings.append(Firing(rule, effects, _fill(rule.reason, facts)))
            continue
        if not matches(rule.when, facts):
            continue
        if rule.kind == "cost":
            for method, text in _cost(rule, profile, out):
                reasons[method].append((0.0, text, rule))
            firings.append(Firing(rule, ["notes " + ", ".join(rule.note)], _fill(rule.reason, {**facts, **rule.assume})))
            continue
        reason = _fill(rule.reason, facts)
        effects = []
        for method in rule.rule_out:
            out.setdefault(method, []).append(f"{reason} [{rule.id}]")
        if rule.rule_out:
            effects.append("rules out " + ", ".join(rule.rule_out))
        for method, weight in rule.score.items():
            scores[method] += weight
            reasons[method].append((weight, _fill(rule.reasons.get(method, rule.reason), facts), rule))
            effects.append(f"{_signed(weight)} {method}")
        for method in rule.note:
            reasons[method].append((0.0, _fill(rule.reasons.get(method, rule.reason), facts), rule))
        if rule.note:
            effects.append("notes " + ", ".join(rule.note))
        if rule.combine:
            combine_choices.append(list(rule.combine))
        firings.append(Firing(rule, effects, reason))

    survivors = sorted(
        (m for m in catalogue if m not in out),
        key=lambda m: (-round(scores[m], 6), catalogue[m].cost_rank),
    )
    recommendations = [
        _recommend(catalogue[m], scores[m], reasons[m], feasibility.get(m) or _feasibility(catalogue[m], facts))
        for m in survivors
    ]
    ruled_out = {m: out[m] for m in catalogue if m in out}
    combine: list[str] = []
    if recommendations:
        top = recommendations[0].method
        for choices in combine_choices:
            pick = next((m for m in choices if m in survivors and m != top), None)  # the first that adds something to the top
            if pick and pick not in combine:
                combine.append(pick)
        if combine:
            combine.insert(0, top)
    for firing in firings:  # say "suggests combining" only for what the advice does combine
        suggested = [m for m in firing.rule.combine if m in combine]
        if suggested:
            firing.effects.append("suggests combining " + ", ".join(suggested))
    return Advice(profile, recommendations, ruled_out, combine, firings, list(notes or []) + context_notes(profile))


def _recommend(method, score: float, contributions, feasibility: str) -> Recommendation:
    ordered = sorted(contributions, key=lambda c: (c[0] == 0, -abs(c[0]) if c[0] > 0 else abs(c[0]) + 100))
    rationale = [f"{text} ({_signed(weight)})" if weight else text for weight, text, _ in ordered]
    source_ids: list[str] = []
    for _, _, rule in ordered:
        source_ids.extend(s for s in rule.sources if s not in source_ids)
    for evidence in method.evidence:
        source_ids.extend(s for s in evidence.sources if s not in source_ids)
    why = [f"{_signed(w)} {rule.title}" for w, _, rule in ordered if w and rule.id != "P1-cost"]
    return Recommendation(method.id, method.name, round(score, 2), rationale, [cite(s) for s in source_ids], feasibility, why)


def _feasibility(method, facts: dict) -> str:
    if not method.trains_weights:
        return "no training"
    if facts["weight_access"] == "closed_api_ft":
        return "vendor tuning job"
    size = facts["model_params_b"]
    if not facts["has_gpu"]:
        return "CPU is enough" if size is not None and size <= 1 else "needs a (rented) GPU"
    return "size unknown: run `adaptkit estimate`" if size is None else "fits"
