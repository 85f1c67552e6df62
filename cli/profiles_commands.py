"""`vlp profiles …`: the places an experiment can run (`local` is built in; cluster profiles come from the profiles file)."""

from __future__ import annotations

import typer

app = typer.Typer(help="List and show profiles (where experiments run).", no_args_is_help=True)


@app.command("list")
def list_profiles(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every profile: `local` and those in the profiles file ($VLP_PROFILES or ~/.config/vlp/profiles.yaml)."""
    from vlp.cli.output import print_json, print_table
    from vlp.platform.profiles import describe_local, load_profiles, profiles_path

    local = describe_local()
    profiles = load_profiles()
    if json_output:
        print_json([local, *(profile.model_dump(mode="json", by_alias=True) for profile in profiles.values())])
        return
    rows = [[local["name"], local["mode"], "this machine", "", "", local["description"]]]
    rows += [[p.name, p.mode, p.kfp.host, p.namespace, p.image, p.description] for p in profiles.values()]
    print_table("profiles", ["name", "mode", "KFP host", "namespace", "image", "description"], rows)
    typer.echo(f"profiles file: {profiles_path()}" + ("" if profiles else " (none yet: see examples/profiles.yaml)"))


@app.command("show")
def show_profile(
    name: str = typer.Argument(..., help="Profile name."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
) -> None:
    """One profile, every field with its default filled in. Profiles hold Secret names and keys, never values."""
    import yaml

    from vlp.cli.output import print_json
    from vlp.platform.profiles import describe_local, find_profile

    profile = find_profile(name)
    document = describe_local() if profile is None else profile.model_dump(mode="json", by_alias=True)
    if profile is not None:
        # What pods will see, spelled out: each variable and the Secret key it comes from.
        document["pod_env_from_secrets"] = {item.env: f"{item.secret}/{item.key}" for item in profile.secret_env()}
    if json_output:
        print_json(document)
    else:
        typer.echo(yaml.safe_dump(document, sort_keys=False).rstrip())
