"""`adaptkit merge RUN_DIR -o DIR`: the run's adapter folded into its base, saved as a standalone model."""

from __future__ import annotations

import json

import click


@click.command("merge")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(), help="A new folder for the merged model.")
@click.option("--dequantize", is_flag=True, help="QLoRA runs: merge into the base loaded in 16 bits (not into 4-bit weights).")
@click.option("--push-to-hub", "push_to_hub", metavar="REPO_ID", help="Upload the merged model to this Hub repo (checked before merging).")
@click.option("--hub-public", is_flag=True, help="With --push-to-hub: create the repo public (default: private).")
@click.option("--hub-license", default="other", show_default=True, help="With --push-to-hub: the model card's license field.")
@click.option("--trust-remote-code", is_flag=True, help="Load a run whose model ships its own Python code (trust_remote_code).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def merge(run_dir, output, dequantize, push_to_hub, hub_public, hub_license, trust_remote_code, as_json):
    """Merge a run's LoRA or IA3 adapter into its base model and save it with its tokenizer, chat template and labels.

    The result loads with plain transformers (no PEFT). Prompt and prefix tuning add virtual tokens instead of
    weight deltas and are refused with that reason, as is a 4-bit base without --dequantize. Example:

    \b
      adaptkit merge runs/lora_cls -o merged/lora_cls
    """
    from pathlib import Path

    from adaptkit.runners.merge import merge as run_merge

    token = None
    if push_to_hub:
        from adaptkit.runners.hub import check_push

        token = check_push(push_to_hub)
    result = run_merge(run_dir, output, dequantize, trust_remote_code)
    if token:
        from adaptkit.runners.hub import push

        result["pushed"] = push(Path(output), push_to_hub, token, private=not hub_public, license=hub_license)
        click.echo(f"pushed {output} to {result['pushed']}", err=True)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"merged the {result['adapter']} adapter of {result['from']} into {result['base']}: {result['merged']} "
               f"({result['parameters']:,} parameters); load it with from_pretrained, no PEFT needed")
