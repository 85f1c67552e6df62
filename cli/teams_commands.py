"""`vlp teams …`: the teams MLflow's basic-auth app records, and applying a teams file to it (admins)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Teams: who may run and promote what (MLflow users and roles).", no_args_is_help=True)


@app.command("list")
def list_teams(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every team with its members and promoters, and your own teams (MLFLOW_TRACKING_USERNAME)."""
    from vlp.cli.output import print_json, print_table
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.teams import PROMOTERS, rosters
    from vlp.platform.tracking.permissions import access_for

    access = access_for(default_tracking_uri())
    if access is None:
        if json_output:
            print_json({"enforced": False, "user": None, "teams": []})
        return
    mine = access.teams()
    teams = rosters(access.auth)
    document = {
        "enforced": True,
        "user": access.username,
        "teams": [{"name": name, "members": sorted(r.members), "promoters": sorted(r.promoters),
                   "you": sorted(mine.get(name, set()))} for name, r in sorted(teams.items())],
    }
    if json_output:
        print_json(document)
        return
    rows = [[t["name"], ", ".join(t["members"]), ", ".join(t["promoters"]),
             "promoter" if PROMOTERS in t["you"] else ("member" if t["you"] else "")] for t in document["teams"]]
    print_table(f"teams (you are {access.username})", ["team", "members", "promoters", "you"], rows)


@app.command("sync")
def sync(
    teams_file: Path = typer.Argument(..., help="YAML with `teams:` (name, members, promoters), as the chart renders it."),
    passwords_dir: Path = typer.Option(None, "--passwords-dir", help="Folder with a file per new user holding their initial password."),
) -> None:
    """Make MLflow's users, team roles and team permissions match the file (an MLflow admin login; idempotent)."""
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.teams import load_teams_document, sync_teams

    report = sync_teams(load_teams_document(teams_file), default_tracking_uri(), passwords_dir)
    for label, items in (("created user", report.users_created), ("created role", report.roles_created),
                         ("assigned", report.assigned), ("unassigned", report.unassigned), ("permission", report.grants_changed)):
        for item in items:
            typer.echo(f"{label}: {item}")
    changes = sum(map(len, (report.users_created, report.roles_created, report.assigned, report.unassigned, report.grants_changed)))
    typer.echo(f"teams in sync ({changes} change{'s' if changes != 1 else ''})")
