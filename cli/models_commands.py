"""`vlp models list`, `vlp models history` and `vlp promote`: the MLflow model registry."""

from __future__ import annotations

import typer

app = typer.Typer(help="Registered models.", no_args_is_help=True)


@app.command("list")
def list_models(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Registered models, their versions, aliases and headline metrics."""
    from vlp.cli.output import print_json, print_table
    from vlp.platform.registry.queries import model_versions
    from vlp.platform.tracking.headline import describe_headline

    versions = model_versions()
    if json_output:
        print_json(versions)
        return
    rows = [[v["name"], v["version"], ",".join(v["aliases"]), v["run_id"], describe_headline(v["headline"])] for v in versions]
    print_table("models", ["name", "version", "aliases", "run id", "headline"], rows)


@app.command("history")
def history(
    name: str = typer.Argument(..., help="Registered model name."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every promotion of the model: when, who, which alias, from which version to which, and the gate results."""
    import datetime

    from vlp.cli.output import print_json, print_table
    from vlp.platform.registry.versions import promotion_history

    events = promotion_history(name)
    if json_output:
        print_json(events)
        return
    rows = [[datetime.datetime.fromtimestamp(e["at"]).strftime("%Y-%m-%d %H:%M:%S"), e.get("alias", ""), e.get("from") or "-",
             e["version"], e.get("by", ""), "yes" if e.get("forced") else "",
             "; ".join(f"{g['gate']} {'pass' if g['passed'] else 'FAIL'}" for g in e.get("gates", []))] for e in events]
    print_table(f"promotions of {name}", ["at", "alias", "from", "to", "by", "forced", "gates"], rows)


def promote(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Version number."),
    alias: str = typer.Option("champion", "--alias", help="Alias to point at the version."),
    force: bool = typer.Option(False, "--force", help="Promote even if a gate fails (recorded in the audit tag)."),
) -> None:
    """Point an alias at a model version if it passes the gates recorded at registration."""
    from vlp.platform.errors import VlpUserError
    from vlp.platform.registry.versions import promote as promote_version

    if not version.isdigit():
        raise VlpUserError(f"VERSION {version!r}: expected a version number such as 1")
    promotion = promote_version(name, version, alias, force=force)
    for result in promotion.gates:
        typer.echo(f"  {result.describe()}")
    if promotion.alias_version != version:
        typer.echo(f"{name} version {version} was promoted, but a concurrent promotion then moved @{alias} to version {promotion.alias_version}")
        return
    typer.echo(f"{name} version {version} is now @{alias}")
