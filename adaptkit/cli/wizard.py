"""The interactive wizard: a table of questions, each asked only when it matters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from adaptkit.advisor.profile import DEFAULT_BUDGET_USD, Profile, infer_from_model_name
from adaptkit.units import parse_count, parse_gigabytes, parse_number, parse_params_b


def _always(answers: dict) -> bool:
    return True


def _is_open(answers: dict) -> bool:
    return answers.get("weight_access") == "open"


def _size_unknown(answers: dict) -> bool:
    """Ask the size only of a model known neither by a config (built-in or local) nor by its name."""
    model = answers.get("model")
    if not _is_open(answers) or answers.get("model_params_b") is not None:
        return False
    if not model:
        return True
    from adaptkit.advisor.profile import model_facts

    return not model_facts(str(model))[0].get("model_params_b")


def _base_unknown(answers: dict) -> bool:
    model = answers.get("model")
    known = model and infer_from_model_name(model)[1] is not None
    return _is_open(answers) and answers.get("goal") in ("instruction_following", "alignment") and not known


def _price_unknown(answers: dict) -> bool:
    from adaptkit.advisor.profile import api_price

    name = answers.get("api_model") or answers.get("model")
    return (not _is_open(answers) and answers.get("inference_volume") in ("medium", "high")
            and not (name and api_price(str(name))))


def _window_unknown(answers: dict) -> bool:
    if answers.get("goal") != "knowledge" or answers.get("corpus_tokens") in (None, "") or not _is_open(answers):
        return False
    from adaptkit.advisor.profile import model_facts

    return "context_window_tokens" not in model_facts(str(answers.get("model") or ""))[0]


def _has_gpus(answers: dict) -> bool:
    return _is_open(answers) and _count(answers.get("num_gpus", 0)) > 0


def _count(value) -> int:
    try:
        return parse_count(value)
    except ValueError:
        return 0


def _rewards_may_help(answers: dict) -> bool:
    """Ask about checkable answers where RL could use them: open generative models with pairs at scale or reference answers."""
    if answers.get("goal") == "alignment" and _count(answers.get("preference_pairs", 0)) >= 10_000:
        return True
    return (_is_open(answers) and answers.get("task") != "classification" and answers.get("goal") in ("behavior", "alignment", "domain_adaptation")
            and _count(answers.get("labeled_examples", 0)) >= 10)


@dataclass(frozen=True)
class Question:
    """One wizard question. `parse` turns typed text into the answer; blank gives None when optional."""

    key: str
    prompt: str
    why: str  # one line: why the answer matters
    kind: str = "text"  # text | select | confirm
    choices: tuple[tuple[str, str], ...] = ()
    parse: Optional[Callable] = None
    optional: bool = False
    ask_if: Callable[[dict], bool] = _always


QUESTIONS: tuple[Question, ...] = (
    Question("task", "What must the model do?", 'decides how results are evaluated and which recipe fits', "select", (
        ("classification", "classification: put inputs into fixed classes"),
        ("extraction", "extraction: pull fields or entities out of text"),
        ("generation", "generation: write text (emails, descriptions, stories)"),
        ("chat", "chat: hold a conversation (assistant, support bot)"),
        ("qa", "qa: answer questions"),
        ("summarization", "summarization: condense documents"),
        ("code", "code: write or explain code"),
        ("agent", "agent: carry out multi-step tasks with tools"),
    )),
    Question("modality", "What goes in and comes out?", 'images, audio or generated images change the models and the methods that fit',
             "select", (
        ("text", "text: text in, text (or a label) out"),
        ("image_text_to_text", "image_text_to_text: images and text in, text out (a vision-language model, an image classifier)"),
        ("speech_to_text", "speech_to_text: audio in, text out (transcription, Whisper-style)"),
        ("text_to_image", "text_to_image: a prompt in, an image out (Stable Diffusion/FLUX-style)"),
    ), ask_if=lambda a: a.get("task") in ("classification", "generation", "qa", "chat", "extraction", "summarization")),
    Question("goal", "What should adapting it change?", 'the main fork: facts go to retrieval, behavior to prompts or training', "select", (
        ("behavior", "behavior: format, style, tone or task skill"),
        ("knowledge", "knowledge: facts it does not know (your documents)"),
        ("instruction_following", "instruction_following: make it follow instructions or chat"),
        ("alignment", "alignment: preferences, helpfulness, safety style"),
        ("domain_adaptation", "domain_adaptation: a deep shift (new language, specialist domain)"),
        ("actions", "actions: call APIs, fetch live data, take actions"),
    )),
    Question("weight_access", "Which model access do you have?", 'closed weights leave prompting, RAG, tools and vendor tuning', "select", (
        ("open", "open: I can download the weights and train them"),
        ("closed_api", "closed_api: an API only (no tuning)"),
        ("closed_api_ft", "closed_api_ft: an API, and my org can create tuning jobs with the vendor"),
    )),
    Question("model", "Model name or path (blank if undecided)", 'a name like Qwen/Qwen2.5-7B-Instruct also gives its size', optional=True, parse=str, ask_if=_is_open),
    Question("model_params_b", "Model size (e.g. 7B, 770M; blank if unknown)", 'memory needs scale with it: about 18 GB per billion for full fine-tuning', optional=True, parse=parse_params_b, ask_if=_size_unknown),
    Question("is_base_model", "Is it a base model (not instruction-tuned)?", 'only base models gain from instruction tuning', "confirm", ask_if=_base_unknown),
    Question("num_gpus", "How many GPUs can you train on?", 'the default is what this machine has', parse=parse_count, ask_if=_is_open),
    Question("gpus_per_node", "How many of them are on each machine?", 'more GPUs than one machine holds run on several: 16 of 8 '
             'per node is two nodes', parse=parse_count, ask_if=lambda a: _has_gpus(a) and _count(a.get("num_gpus", 0)) > 8),
    Question("gpu_vram_gb", "Memory per GPU in GB?", 'decides full fine-tuning vs LoRA vs 4-bit QLoRA', parse=parse_gigabytes, ask_if=_has_gpus),
    Question("labeled_examples", "How many labeled input->output examples do you have? (e.g. 0, 50, 2k)", '0 means prompting; a few dozen, few-shot; hundreds or more, training', parse=parse_count),
    Question("preference_pairs", "How many chosen/rejected preference pairs?", 'DPO wants ~500+, RLHF ~10,000+', parse=parse_count,
             ask_if=lambda a: a.get("goal") == "alignment"),
    Question("feedback_labels", "How many single replies rated thumbs-up or thumbs-down (unpaired)?", 'KTO learns from unpaired ratings: no pairs needed',
             parse=parse_count, ask_if=lambda a: a.get("goal") == "alignment" and _count(a.get("preference_pairs", 0)) < 500),
    Question("knowledge_changes_often", "Do the facts change weekly or faster?", 'changing facts belong in retrieval, not in weights', "confirm",
             ask_if=lambda a: a.get("goal") == "knowledge" or a.get("task") in ("qa", "chat")),
    Question("needs_citations", "Must answers cite their sources?", 'only retrieval gives provenance', "confirm",
             ask_if=lambda a: a.get("goal") == "knowledge" or a.get("task") == "qa"),
    Question("corpus_tokens", "How large is the document collection, in tokens? (blank if unknown)", 'under ~200k tokens it can go straight into a long prompt', optional=True,
             parse=parse_count, ask_if=lambda a: a.get("goal") == "knowledge"),
    Question("unlabeled_corpus_tokens", "Unlabeled domain text for continued pre-training, in tokens? (blank if none)", '10^8+ tokens make continued pre-training (full fine-tuning) worth it',
             optional=True, parse=parse_count, ask_if=lambda a: a.get("goal") == "domain_adaptation" and _is_open(a)),
    Question("needs_actions_or_live_data", "Does it need live data, actions or exact computation?", "weights cannot hold tomorrow's price: that needs a tool", "confirm",
             ask_if=lambda a: a.get("goal") != "actions"),
    Question("inference_volume", "How many requests a day?", 'at high volume, long few-shot prompts cost more than a fine-tune', "select", (
        ("low", "low: under 1k a day"), ("medium", "medium: 1k to 100k"), ("high", "high: over 100k"),
    )),
    Question("latency_slo_ms", "Latency target per request in ms? (blank if none)", 'tight latency favours short prompts', optional=True, parse=parse_number,
             ask_if=lambda a: a.get("inference_volume") in ("medium", "high")),
    Question("api_model", "API model name (e.g. gpt-4o-mini; blank if undecided)", 'a known name gives its token prices from a dated table',
             optional=True, parse=str, ask_if=lambda a: not _is_open(a) and a.get("weight_access") is not None),
    Question("usd_per_1m_input_tokens", "Price per 1M input tokens in USD? (blank: assume $0.5)", 'few-shot prompts are paid per input token, every request',
             optional=True, parse=parse_number, ask_if=_price_unknown),
    Question("usd_per_1m_output_tokens", "Price per 1M output tokens in USD? (blank: 4x the input price)", 'output tokens are priced apart, usually 4-5x input',
             optional=True, parse=parse_number, ask_if=_price_unknown),
    Question("context_window_tokens", "The model's context window in tokens? (blank if unknown)", 'decides whether the whole corpus fits in one prompt',
             optional=True, parse=parse_count, ask_if=_window_unknown),
    Question("budget_usd", "One-time adaptation budget in USD? (e.g. 500, 20k)", 'RLHF needs ~$100k; renting a GPU for LoRA costs tens of dollars', parse=parse_number),
    Question("privacy_on_prem", "Must the data stay on your premises?", 'rules out external APIs and vendor tuning', "confirm"),
    Question("tasks_to_serve", "How many separately served tasks or tenants will share one base model?",
             'many tasks favour one small adapter or soft prompt each; the task families inside one instruction dataset count as one',
             parse=parse_count, ask_if=_is_open),
    Question("mixed_task_batching", "Will requests for different tasks share one batch?", 'soft prompts batch across tasks trivially', "confirm",
             ask_if=lambda a: _count(a.get("tasks_to_serve", 1)) >= 2),
    Question("vendor_offers_preference_tuning", "Does your vendor offer preference (DPO) tuning?", 'without it, closed weights allow no DPO', "confirm",
             ask_if=lambda a: a.get("weight_access") == "closed_api_ft" and a.get("goal") == "alignment"),
    Question("online_labeling", "Can you label fresh model outputs while training?", 'on-policy labels are where RLHF beats DPO', "confirm",
             ask_if=lambda a: a.get("goal") == "alignment" and _count(a.get("preference_pairs", 0)) >= 10_000),
    Question("verifiable_reward", "Can a program check the answers (unit tests, exact or numeric answers)?",
             'RL with a checkable reward needs no preference pairs', "confirm", ask_if=_rewards_may_help),
)


def default_for(key: str, answers: dict, gpus: list):
    """The default shown for a question: detected hardware, else the profile's own default."""
    if key == "num_gpus":
        return len(gpus)
    if key == "gpu_vram_gb":
        return round(min(g.memory_gb for g in gpus), 1) if gpus else 24
    if key == "budget_usd":
        return DEFAULT_BUDGET_USD
    return Profile.model_fields[key].default


BACK = "<back>"  # what a prompter returns when the user steps back one question
DONE = "<done>"


def _due(question: Question, answers: dict, asked: set) -> bool:
    return question.key not in asked and question.key not in answers and question.ask_if(answers)


def _shown(question: Question, value) -> str:
    if value is None:
        return "(blank)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def review_question(answers: dict, given: set) -> Question:
    """The review step: every answer in question order; picking one asks it again."""
    rows = [(q.key, f"{q.key}: {_shown(q, answers[q.key])}" + ("  (given)" if q.key in given else ""))
            for q in QUESTIONS if q.key in answers]
    return Question("review", "Review your answers: pick one to change, or go on", "the advice uses exactly these", "select",
                    ((DONE, "all correct: show the advice"),) + tuple(rows))


def run_wizard(answers: dict, prompter, gpus: list, review: bool = True) -> dict:
    """Ask every question the answers leave open and that matters given earlier answers.

    The user can step back one question at a time (the prompter returns BACK), and before the advice all answers are
    listed for review: a changed answer drops the asked answers it made irrelevant and asks the ones it made relevant.
    """
    given = set(answers)
    answers, history = dict(answers), []  # history: keys this wizard asked, in order (BACK pops the last)
    by_key, undone = {q.key: q for q in QUESTIONS}, {}  # undone: answers stepped back over, offered again as defaults
    while True:
        question = next((q for q in QUESTIONS if _due(q, answers, set(history))), None)
        if question is not None:
            default = undone.pop(question.key) if question.key in undone else default_for(question.key, answers, gpus)
            value = prompter.ask(question, default, back=bool(history))
            if value == BACK:
                key = history.pop()
                if key in answers:
                    undone[key] = answers.pop(key)
                continue
            history.append(question.key)
            if value is not None or question.optional:
                answers[question.key] = value
            continue
        if not review:
            return answers
        key = prompter.ask(review_question(answers, given), DONE)
        if key in (DONE, None, BACK):
            return answers
        question = by_key[key]
        value = prompter.ask(question, answers.get(key, default_for(key, answers, gpus)))
        if value is not None or question.optional:
            answers[key] = value
        if key not in history:
            history.append(key)
        for later in [k for k in history if not by_key[k].ask_if(answers)]:  # answers that no longer matter
            history.remove(later)
            if later not in given:
                answers.pop(later, None)


INSTRUCTION = "(arrows, Enter)"  # questionary's own "(Use arrow keys)", short enough to follow the hint on its line


def _fit(text: str, room: int) -> list[str]:
    """The hint under a question, indented, wrapped at whole words to the terminal (leaving `room` on its last line
    for the prompt's own instruction), so that nothing is cut mid-word at 80 columns."""
    import shutil
    import textwrap

    width = max(40, shutil.get_terminal_size((80, 24)).columns - 1)
    lines = textwrap.wrap(text, width - 2, initial_indent="  ", subsequent_indent="   ", break_long_words=False) or ["  "]
    if len(lines[-1]) + room > width:  # the instruction goes after the last line: give it a line of its own
        lines.append("")
    return lines


class QuestionaryPrompter:
    """Ask with questionary. Ctrl-C raises KeyboardInterrupt, Ctrl-D EOFError (the CLI exits 130).

    `input` and `output` are prompt_toolkit's (tests pass a pipe and a dummy output); None means the terminal.
    """

    def __init__(self, input=None, output=None):
        self.io = {"input": input, "output": output} if input is not None else {}

    def ask(self, question: Question, default, back: bool = False):
        import questionary

        why = f"({question.why}{'; < goes back' if back and question.kind == 'text' else ''})"
        message = f"{question.prompt}\n" + "\n".join(_fit(why, len(INSTRUCTION) + 4))
        if question.kind in ("select", "confirm"):
            pairs = question.choices if question.kind == "select" else ((True, "yes"), (False, "no"))
            choices = [questionary.Choice(label, value=value) for value, label in pairs]
            if back:
                choices.append(questionary.Choice("< back to the previous question", value=BACK))
            if question.kind == "confirm":
                default = bool(default)
            default_choice = next((c for c in choices if c.value == default), None)
            return questionary.select(message, choices=choices, default=default_choice, instruction=INSTRUCTION,
                                      **self.io).unsafe_ask()

        def validate(text: str):
            if back and text.strip() == "<":
                return True
            if not text.strip():
                return True if question.optional or default is not None else "please answer"
            try:
                question.parse(text)
            except ValueError as exc:
                return str(exc)
            return True

        shown = "" if default is None else f"{default:g}" if isinstance(default, float) else str(default)
        text = questionary.text(message, default=shown, validate=validate, validate_while_typing=False, **self.io).unsafe_ask()
        if back and text.strip() == "<":
            return BACK
        if not text.strip():
            return None if question.optional else default
        return question.parse(text)


def free_name(name: str) -> str:
    """`name` when nothing is there, else the first free `stem-2.suffix`, `stem-3.suffix`, ..."""
    from pathlib import Path

    path = Path(name).expanduser()
    number = 2
    while path.exists():
        path = path.with_name(f"{Path(name).stem}-{number}{Path(name).suffix}")
        number += 1
    return str(path) if path != Path(name).expanduser() else name


def _new_file(force: bool) -> Callable[[str], str]:
    def parse(text: str) -> str:
        from pathlib import Path

        path = Path(text.strip()).expanduser()
        if path.suffix.lower() not in (".yaml", ".yml"):
            raise ValueError("a recipe is a .yaml file")
        if path.is_dir() or (path.exists() and not force):
            raise ValueError(f"{text.strip()} already exists: choose another name (or run advise with --force to replace it)")
        if not path.parent.is_dir():
            raise ValueError(f"no folder {path.parent} to write it in")
        return text.strip()
    return parse


def _folder(text: str) -> str:
    from pathlib import Path

    if not Path(text.strip()).expanduser().is_dir():
        raise ValueError(f"no such folder: {text.strip()} (blank: the demo documents)")
    return text.strip()


def ask_recipe(prompter, method, check: Callable[[str, str], str], force: bool = False, given: dict | None = None) -> dict | None:
    """Offer to write the recipe for `method` (its registry definition); return {path, and the data answers} or None.

    Every answer is checked at its prompt: a recipe name that exists gets a free one proposed, a data file must
    exist and hold what the method reads (`check(profile_key, text)` raises ValueError with the reason).
    """
    write = Question("force", f"Write a runnable recipe for {method.id}?",
                     "then `adaptkit run` trains it" if method.trains else "then `adaptkit run` scores it on your data", "confirm")
    if not prompter.ask(write, True):
        return None
    default = f"recipe-{method.id}.yaml"
    reply = {"path": prompter.ask(Question("path", "Recipe file to write", "a new .yaml file; nothing is overwritten",
                                           parse=_new_file(force)), default if force else free_name(default))}
    given = given or {}

    def blank(key: str, demo: str) -> str:  # what a blank answer means: the file already given (--data), else the demo's
        return f"blank: {given[key]}" if given.get(key) else f"blank: {demo}"

    asks = []
    if method.needs_corpus:
        asks.append(Question("corpus_dir", f"Folder of your documents ({blank('corpus_dir', 'the demo documents')})", method.needs_corpus,
                             optional=True, parse=lambda text: check("corpus_dir", _folder(text))))
    if method.needs_train:
        asks.append(Question("train_data", f"Training data file ({blank('train_data', 'the demo data')})",
                             "a .jsonl, .csv or .parquet file; its columns are read and checked now",
                             optional=True, parse=lambda text: check("train_data", text)))
    held = "a share of the training file" if given.get("train_data") else "the demo data"
    asks.append(Question("eval_data", f"Held-out data file ({blank('eval_data', held)})", method.needs_eval or "the rows every method is scored on",
                         optional=True, parse=lambda text: check("eval_data", text)))
    for question in asks:
        reply[question.key] = prompter.ask(question, None)
    return reply


def _existing_file(text: str) -> str:
    from pathlib import Path

    path = Path(text.strip()).expanduser()
    if path.is_dir():  # pictures or clips: class subfolders, or files beside a metadata file
        return text.strip()
    if not path.is_file():
        raise ValueError(f"no such file: {text.strip()} (blank to skip)")
    if path.suffix.lower() not in (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt"):
        raise ValueError("expected a .jsonl, .json, .csv, .tsv, .parquet or .txt file, or a folder of images or audio (blank to skip)")
    return text.strip()


ROW_KINDS = (("label", "an input and its label (one of a few classes)"),
             ("response", "an input and the output the model should write"),
             ("pair", "a prompt, a better reply and a worse one (preference pairs)"),
             ("text", "text only (a corpus of the domain)"))


def ask_columns(prompter, path: str, columns: list[str], rows: list[dict]) -> dict:
    """A data file whose column names do not say what its rows are: what each row holds and which column is which,
    as the column answers (text_column and label_column, prompt_column and response_column, ...) that the advice, the
    recipe it writes and the run read the file by. The default kind: a label where a column repeats a few values."""
    from pathlib import Path

    def pick(key: str, prompt: str, among: list[str]) -> str:
        return prompter.ask(Question(key, prompt, f"the columns of {Path(path).name}", "select", tuple((c, c) for c in among)), among[0])

    repeating = [c for c in columns if 1 < len({str(row.get(c)) for row in rows}) <= max(2, min(20, len(rows) // 2))]
    kinds = tuple(kind for kind in ROW_KINDS if kind[0] != "pair" or len(columns) >= 3)  # a pair takes three columns
    kind = prompter.ask(Question("rows", f"What does each row of {Path(path).name} hold?",
                                 "its column names do not say: which is which is asked once, and kept in the recipe", "select",
                                 kinds), "label" if repeating else "response")
    if kind == "text":
        return {"text_column": pick("text_column", "Which column holds the text?", columns)}
    first = pick("input_column", "Which column holds the prompt?" if kind == "pair" else "Which column holds the input?",
                 sorted(columns, key=lambda c: c in repeating))  # free text first
    rest = [c for c in columns if c != first]
    if kind == "label":
        return {"text_column": first,
                "label_column": pick("label_column", "Which column holds the label?", sorted(rest, key=lambda c: c not in repeating))}
    if kind == "response":
        return {"prompt_column": first, "response_column": pick("response_column", "Which column holds the output?", rest)}
    chosen = pick("chosen_column", "Which column holds the better reply?", rest)
    return {"prompt_column": first, "chosen_column": chosen,
            "rejected_column": pick("rejected_column", "Which column holds the worse reply?", [c for c in rest if c != chosen])}


def named_columns(prompter, path: str, answers: dict) -> dict:
    """The column answers a data file needs before it can be read (asked only where its columns do not say; the
    user's own column answers are used first)."""
    from adaptkit.runners.data_facts import NAMED, RowsUnclear, infer

    try:
        infer(path, answers.get("model"), {key: answers[key] for key in NAMED if answers.get(key)})
    except RowsUnclear as unclear:
        from adaptkit.runners.data import read_rows

        return ask_columns(prompter, path, unclear.columns, read_rows(path, "train", "data")[:2000])
    return {}


def ask_data_file(prompter) -> str | None:
    """The wizard's first question: a data file answers the task, the counts and the lengths it proves."""
    question = Question("data", "Do you have a data file? Its path (blank to skip)",
                        "the task, the example counts and their lengths are read from it, and not asked", optional=True,
                        parse=_existing_file)
    return prompter.ask(question, None)


def ask_bake_off(prompter) -> bool:
    """Offer the bake-off: recipes for the top choices and the compare command."""
    return bool(prompter.ask(Question("bake_off", "Also write a bake-off of the top choices (folder bake-off/)?",
                                      "adaptkit compare then measures them on the same held-out data", "confirm"), False))
