"""The command line. Subcommands load lazily so `--help` and `advise` never pay for torch."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from adaptkit import __version__
from adaptkit.errors import AdaptkitError, brief, one_line

# name -> (module, attribute, one-line help shown by --help without importing the module)
COMMANDS = {
    "advise": ("adaptkit.cli.advise", "advise", "Recommend an adaptation method for your task, data and hardware."),
    "bakeoff": ("adaptkit.cli.bakeoff", "bakeoff", "Run candidate recipes as successive halving: stop the weak ones early, keep the best."),
    "estimate": ("adaptkit.cli.estimate", "estimate", "Predict peak GPU memory, time and cost for a method, and what to change if it does not fit."),
    "compare": ("adaptkit.cli.compare", "compare", "Run several recipes on the same held-out data and recommend the cheapest good one."),
    "export": ("adaptkit.cli.export", "export", "Write a recipe as a script or a cluster job, or a finished run as ONNX, GGUF or vLLM."),
    "hardware": ("adaptkit.cli.hardware", "hardware", "Show GPUs, CPU, RAM, disk and the installed training stack."),
    "ledger": ("adaptkit.cli.ledger", "ledger", "List, show, remove or scan the record of every finished run."),
    "merge": ("adaptkit.cli.merge", "merge", "Merge a run's LoRA/IA3 adapter into its base: a standalone model for from_pretrained."),
    "methods": ("adaptkit.cli.methods", "methods_cmd", "List the ten adaptation methods (the adaptation table)."),
    "predict": ("adaptkit.cli.predict", "predict", "Predict with a finished run on a file or stdin (scored where the answers are there)."),
    "recipes": ("adaptkit.cli.recipes", "recipes", "List, show, copy and validate recipes."),
    "run": ("adaptkit.cli.run", "run", "Train and evaluate a recipe (built-in name or path) with key=value overrides."),
    "serve": ("adaptkit.cli.serve", "serve", "Serve finished runs over the OpenAI protocol: one base, an adapter per run."),
    "tune": ("adaptkit.cli.tune", "tune", "Search a recipe's learning rate, epochs and LoRA rank; write the best as a recipe."),
}

EXIT_CANCELLED = 130
PATH_ERRORS = {getattr(__import__("errno"), name) for name in ("ENAMETOOLONG", "ENOENT", "EACCES", "EISDIR", "ENOTDIR", "ELOOP", "EROFS")}


class AdaptkitGroup(click.Group):
    """A group that imports subcommands on use and turns errors into one line and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's main, with usage errors as one `error:` line (and its exit code 2) instead of three."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if exc.__class__.__name__ == "NoArgsIsHelpError":  # `adaptkit` alone, or a group alone: the help itself
                exc.show()
                sys.exit(exc.exit_code)
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            click.echo(f"error: {one_line(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("cancelled", err=True)
            sys.exit(EXIT_CANCELLED)
        sys.exit(code if isinstance(code, int) else 0)

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx, formatter):
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AdaptkitError as exc:
            if ctx.meta.get("adaptkit.debug"):
                raise
            click.echo(f"{exc.prefix}{exc}", err=True)
            ctx.exit(exc.exit_code)
        except (KeyboardInterrupt, EOFError, click.Abort):
            if ctx.meta.get("adaptkit.debug"):
                raise
            what = "nothing was written" if ctx.invoked_subcommand in ("advise", "estimate", "hardware", "methods", "recipes") else ""
            click.echo(f"\ncancelled{': ' + what if what else ''}", err=True)
            ctx.exit(EXIT_CANCELLED)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except BrokenPipeError:  # the reader went away (`| head`): a normal end, with nothing more to say
            _silence_stdout()
            ctx.exit(0)
        except Exception as exc:  # a bug, not the user's fault: say so in one line (a path the system refused: the user's)
            if ctx.meta.get("adaptkit.debug"):
                raise
            if isinstance(exc, OSError) and exc.errno in PATH_ERRORS:
                name = brief(str(exc.filename), 80) if exc.filename else "a path"
                click.echo(f"error: {name}: {exc.strerror or exc.__class__.__name__} (check the path)", err=True)
                ctx.exit(2)
            click.echo(f"error: unexpected {exc.__class__.__name__}: {one_line(exc)[:300]} (rerun with --debug for the traceback)",
                       err=True)
            ctx.exit(1)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush into the closed pipe does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@click.group(cls=AdaptkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="adaptkit")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx, debug):
    """Which adaptation method, and will it fit? Then a recipe that runs.

    Start with `adaptkit advise` (a short wizard), or `adaptkit advise --answers FILE`.
    """
    ctx.meta["adaptkit.debug"] = debug
    if not debug:
        _quiet_libraries()
    _rename_notes()


def _quiet_libraries() -> None:
    """Third-party deprecation notices and load reports are for their developers: hidden unless --debug. Set before
    transformers is imported (it reads TRANSFORMERS_VERBOSITY then); adaptkit's own messages are not warnings."""
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", module=r"(transformers|peft|trl|accelerate|torch|datasets)(\.|$)")


def _rename_notes() -> None:
    """An old setting name in a recipe (errors.RenamedSetting) is one `note:` line on stderr, once per message."""
    import warnings

    from adaptkit.errors import RenamedSetting

    warnings.filterwarnings("default", category=RenamedSetting)  # put first: it wins over the FutureWarning filter
    if getattr(warnings.showwarning, "adaptkit", False):
        return
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, RenamedSetting):
            click.echo(f"note: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    show.adaptkit = True
    warnings.showwarning = show


def main(argv=None):
    """Console entry point."""
    try:
        cli.main(args=argv, prog_name="adaptkit", standalone_mode=True)
    except SystemExit:
        raise
    except BaseException:  # only reached with --debug
        traceback.print_exc()
        sys.exit(1)
