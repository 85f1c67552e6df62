"""Teams: who belongs to which team, as MLflow's basic-auth app records it.

A user is an MLflow user; the name comes from `MLFLOW_TRACKING_USERNAME` (on the cluster, the profile's
credentials Secret sets it), never from a file of vlp's. Membership lives in MLflow too, as roles in the
auth database: `vlp-team-<team>-members` (promoters are members as well) and `vlp-team-<team>-promoters`.
A user reads their own roles (`list_user_roles` for themselves), which decides their teams. Whoever creates
an experiment or a registered model shares it with every team member, and a member may not list another
role's users, so each role's description carries its roster too; `vlp teams sync` (an admin, the chart's
bootstrap Job) writes the roles, their users and their descriptions together from one teams document.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vlp.platform.errors import VlpUserError

TEAM_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"  # an experiment file's `team:`
USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
ROLE_PREFIX = "vlp-team-"
MEMBERS, PROMOTERS = "members", "promoters"
WORKSPACE = "default"  # without MLflow workspaces every role lives in the default one


class Team(BaseModel):
    """One team: its members may run and register; its promoters may also move aliases."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str = Field(pattern=TEAM_NAME_PATTERN)
    """Team name, as experiment files give it in `team:`."""
    members: tuple[str, ...] = ()
    """MLflow users who run the team's experiments and register its models (EDIT)."""
    promoters: tuple[str, ...] = ()
    """MLflow users who may also promote the team's models (MANAGE on them); they count as members."""

    @model_validator(mode="after")
    def _user_names(self) -> "Team":
        import re

        for user in (*self.members, *self.promoters):
            if not re.match(USER_NAME_PATTERN, user):
                raise ValueError(f"{user!r} is not an MLflow user name (letters, digits, . _ @ -)")
        return self


class TeamsDocument(BaseModel):
    """The teams file `vlp teams sync` applies (the chart renders it from its `teams:` values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teams: tuple[Team, ...]

    @model_validator(mode="after")
    def _unique(self) -> "TeamsDocument":
        names = [team.name for team in self.teams]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"team {duplicated[0]!r} is listed twice")
        return self


@dataclass(frozen=True)
class Roster:
    team: str
    members: frozenset[str] = field(default_factory=frozenset)
    """Everyone who may run in the team, promoters included."""
    promoters: frozenset[str] = field(default_factory=frozenset)


def role_name(team: str, right: str) -> str:
    return f"{ROLE_PREFIX}{team}-{right}"


def parse_role_name(name: str) -> tuple[str, str] | None:
    """(team, right) of a vlp team role; None for any other role."""
    if not name.startswith(ROLE_PREFIX):
        return None
    team, _, right = name[len(ROLE_PREFIX):].rpartition("-")
    return (team, right) if team and right in (MEMBERS, PROMOTERS) else None


def current_user() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or None


def user_teams(auth, username: str) -> dict[str, set[str]]:
    """The user's teams and rights in each ({team: {"members", "promoters"}}), from their own roles."""
    teams: dict[str, set[str]] = {}
    for role in auth.list_user_roles(username):
        parsed = parse_role_name(role.name)
        if parsed is not None:
            teams.setdefault(parsed[0], set()).add(parsed[1])
    return teams


def rosters(auth) -> dict[str, Roster]:
    """Every team's members and promoters, from the descriptions `vlp teams sync` wrote on the roles."""
    found: dict[str, dict[str, frozenset[str]]] = {}
    for role in auth.list_roles(WORKSPACE):
        parsed = parse_role_name(role.name)
        if parsed is None:
            continue
        try:
            users = frozenset(json.loads(role.description or "{}").get("users", []))
        except (ValueError, AttributeError):
            users = frozenset()
        found.setdefault(parsed[0], {})[parsed[1]] = users
    return {team: Roster(team, rights.get(MEMBERS, frozenset()) | rights.get(PROMOTERS, frozenset()), rights.get(PROMOTERS, frozenset()))
            for team, rights in found.items()}


def require_team(team: str, username: str, teams: dict[str, set[str]]) -> None:
    """The experiment file's `team:` must be one of the submitting user's teams."""
    if team not in teams:
        mine = ", ".join(sorted(teams)) or "none"
        raise VlpUserError(f"team: {team!r} is not one of MLflow user {username!r}'s teams ({mine}); "
                           "set the experiment's team to yours, or ask an MLflow admin to add you (`vlp teams sync`)")


def load_teams_document(path: Path) -> TeamsDocument:
    import yaml
    from pydantic import ValidationError

    from vlp.platform.spec.loading import describe_validation_error

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise VlpUserError(f"{path}: cannot read the teams file ({type(err).__name__})") from None
    if isinstance(document, list):
        document = {"teams": document}
    try:
        return TeamsDocument.model_validate(document)
    except ValidationError as err:
        raise VlpUserError(f"{path}: {describe_validation_error(err, 'see docs/cluster.md, Teams')}") from None


@dataclass
class SyncReport:
    users_created: list[str] = field(default_factory=list)
    roles_created: list[str] = field(default_factory=list)
    assigned: list[str] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)
    grants_changed: list[str] = field(default_factory=list)


def sync_teams(document: TeamsDocument, tracking_uri: str, passwords_dir: Path | None = None) -> SyncReport:
    """Make MLflow's users, team roles and the permissions on every team's experiments and models match the
    document. Idempotent: a second run changes nothing. Needs an admin login."""
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    from vlp.platform.tracking.permissions import reconcile_team_resources

    auth = AuthServiceClient(tracking_uri)
    report = SyncReport()
    wanted = {team.name: Roster(team.name, frozenset(team.members) | frozenset(team.promoters), frozenset(team.promoters)) for team in document.teams}
    for user in sorted(set().union(*(roster.members for roster in wanted.values())) if wanted else set()):
        try:
            auth.get_user(user)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            auth.create_user(user, _password(user, passwords_dir))
            report.users_created.append(user)
    existing = {role.name: role for role in auth.list_roles(WORKSPACE)}
    roles_of_user = _roles_by_user(auth)
    for roster in wanted.values():
        for right, users in ((MEMBERS, roster.members), (PROMOTERS, roster.promoters)):
            name = role_name(roster.team, right)
            description = json.dumps({"team": roster.team, "right": right, "users": sorted(users)})
            role = existing.get(name)
            if role is None:
                role = auth.create_role(WORKSPACE, name, description)
                report.roles_created.append(name)
            elif role.description != description:
                auth.update_role(role.id, description=description)
            assigned = {user for user, roles in roles_of_user.items() if name in roles}
            for user in sorted(users - assigned):
                auth.assign_role(user, role.id)
                report.assigned.append(f"{user} -> {name}")
            for user in sorted(assigned - users):
                auth.unassign_role(user, role.id)
                report.unassigned.append(f"{user} -x {name}")
    report.grants_changed = reconcile_team_resources(tracking_uri, wanted)
    return report


def _roles_by_user(auth) -> dict[str, set[str]]:
    """Every user's role names, in one admin request (MLflow's users list carries each user's roles)."""
    from mlflow.server.auth.routes import LIST_USERS

    return {user["username"]: {role["name"] for role in user.get("roles", [])} for user in auth._request(LIST_USERS, "GET").get("users", [])}


def _password(user: str, passwords_dir: Path | None) -> str:
    path = passwords_dir / user if passwords_dir is not None else None
    if path is None or not path.is_file():
        where = f"{passwords_dir}/{user}" if passwords_dir is not None else "--passwords-dir DIR (a file per user)"
        raise VlpUserError(f"user {user!r} does not exist in MLflow and has no initial password: put it in {where}")
    return path.read_text().strip()
