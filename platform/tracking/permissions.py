"""Permissions on experiments and registered models, set through MLflow's basic-auth permission API.

A team's experiments and registered models are EDIT for its members and READ for every other team's users;
its promoters get MANAGE on its registered models, and promotion needs MANAGE. MLflow makes whoever creates
a resource its owner (MANAGE), and only a MANAGE holder may grant, so the creator shares what it just created
and tags it `vlp.team` when done. A member cannot lower their own grant (after revoking it they could not
grant again), so a creator who is not a promoter keeps MANAGE until a promoter's next promotion or
`vlp teams sync` lowers it to EDIT; until then `vlp promote` refuses them as non-promoters (the check needs
MANAGE *and* the team's promoter role).

With the local SQLite store, or a server without the basic-auth app, nothing is enforced: vlp works as
before and says so once per process.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from vlp.platform.errors import VlpUserError
from vlp.platform.teams import PROMOTERS, Roster, current_user, rosters, user_teams

TEAM_TAG = "vlp.team"
CREATOR_TAG = "vlp.created_by"
CREATOR_LOWERED_TAG = "vlp.created_by_lowered"  # the creator's MANAGE (MLflow's owner grant) became EDIT
EXPERIMENT, REGISTERED_MODEL = "experiment", "registered_model"
READ, EDIT, MANAGE = "READ", "EDIT", "MANAGE"
RANK = {"NO_PERMISSIONS": 0, "DENY": 0, READ: 1, "USE": 2, EDIT: 3, MANAGE: 4}


class PermissionRefused(VlpUserError):
    """The MLflow user lacks a right the action needs; nothing was changed."""


@dataclass
class Access:
    """Who is calling an MLflow server that enforces permissions."""

    tracking_uri: str
    username: str
    auth: object  # mlflow.server.auth.client.AuthServiceClient
    is_admin: bool = False
    """MLflow admins pass every permission check of the server, so vlp checks none for them either."""
    _teams: dict[str, set[str]] | None = field(default=None, repr=False)

    def level(self, resource_type: str, resource_id: str) -> str:
        """The caller's effective permission (the server resolves it as it does for every request)."""
        return self.auth.get_user_permission(self.username, resource_type, resource_id).permission

    def teams(self) -> dict[str, set[str]]:
        if self._teams is None:
            self._teams = user_teams(self.auth, self.username)
        return self._teams


_accesses: dict[tuple[str, str | None], Access | None] = {}
NOTICE_SHOWN_ENV = "VLP_PERMISSIONS_NOTICE_SHOWN"  # inherited by the steps a command starts: the notice comes once


def access_for(tracking_uri: str) -> Access | None:
    """The caller's Access where the server enforces permissions; None (and a notice, once per process) where not."""
    username = current_user()
    key = (tracking_uri, username)
    if key not in _accesses:
        _accesses[key] = _probe(tracking_uri, username)
        if _accesses[key] is None:
            _say_not_enforced(tracking_uri)
    return _accesses[key]


def _probe(tracking_uri: str, username: str | None) -> Access | None:
    if not tracking_uri.startswith(("http://", "https://")) or not username:
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    from vlp.platform.tracking.uris import redacted

    auth = AuthServiceClient(tracking_uri)
    try:
        user = auth.get_user(username)
    except MlflowException as err:
        text = str(err)
        if "404" in text or err.error_code == "ENDPOINT_NOT_FOUND":
            return None  # a tracking server without the basic-auth app
        if "401" in text:
            raise VlpUserError(f"MLflow at {redacted(tracking_uri)} refused the login of MLFLOW_TRACKING_USERNAME={username!r}; "
                               "check MLFLOW_TRACKING_PASSWORD") from None
        raise
    return Access(tracking_uri, username, auth, is_admin=bool(user.is_admin))


def _say_not_enforced(tracking_uri: str) -> None:
    import os

    if os.environ.get(NOTICE_SHOWN_ENV):
        return
    os.environ[NOTICE_SHOWN_ENV] = "1"
    from vlp.platform.tracking.uris import redacted

    why = "the local store has no users" if not tracking_uri.startswith(("http://", "https://")) else \
        "no MLflow user (MLFLOW_TRACKING_USERNAME) or a server without the basic-auth app"
    print(f"vlp: note: team permissions are not enforced on {redacted(tracking_uri)} ({why})", file=sys.stderr)


def check_team_access(spec, tracking_uri: str) -> None:
    """Before a run starts: the spec's team is the user's, and its experiment and model are not another team's."""
    from mlflow.tracking import MlflowClient

    access = access_for(tracking_uri)
    if access is None:
        return
    require_member(access, spec.team)
    experiment = MlflowClient(tracking_uri).get_experiment_by_name(spec.name)
    if experiment is not None:
        _claim(access, EXPERIMENT, experiment.experiment_id, f"experiment {spec.name!r}", experiment.tags.get(TEAM_TAG), spec.team)
    if spec.registration.enabled:
        refuse_foreign_model(access, spec.registration.model_name, spec.team)


def require_member(access: Access, team: str) -> None:
    from vlp.platform.teams import require_team

    if not access.is_admin:
        require_team(team, access.username, access.teams())


def desired_levels(all_rosters: dict[str, Roster], team: str, promoter_level: str) -> dict[str, str]:
    """Who gets what on a resource of `team`: every other team's users READ, members EDIT, promoters `promoter_level`."""
    levels = {user: READ for roster in all_rosters.values() for user in roster.members}
    roster = all_rosters.get(team, Roster(team))
    levels.update({user: EDIT for user in roster.members})
    levels.update({user: promoter_level for user in roster.promoters})
    return levels


def share_experiment(access: Access, experiment_id: str, team: str) -> None:
    """Refuse an experiment of another team; share one the caller just created with the teams."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(access.tracking_uri)
    experiment = client.get_experiment(experiment_id)
    if not _claim(access, EXPERIMENT, experiment_id, f"experiment {experiment.name!r}", experiment.tags.get(TEAM_TAG), team):
        return
    _grant_team(access, EXPERIMENT, experiment_id, team, promoter_level=EDIT)
    client.set_experiment_tag(experiment_id, TEAM_TAG, team)


def refuse_foreign_model(access: Access, name: str, team: str) -> None:
    """Before registering: a model of another team is refused in one line (its versions would be refused anyway)."""
    owner = _model_tags(access.tracking_uri, name).get(TEAM_TAG)
    if owner is not None and owner != team:
        raise PermissionRefused(f"registered model {name!r} belongs to team {owner!r}, not {team!r}: "
                                f"MLflow user {access.username!r} lacks EDIT on it; choose another register.model_name")


def share_registered_model(access: Access, name: str, team: str) -> None:
    """Share a registered model the caller just created: members EDIT, promoters MANAGE, other teams READ."""
    from mlflow.tracking import MlflowClient

    if not _claim(access, REGISTERED_MODEL, name, f"registered model {name!r}", _model_tags(access.tracking_uri, name).get(TEAM_TAG), team):
        return
    _grant_team(access, REGISTERED_MODEL, name, team, promoter_level=MANAGE)
    client = MlflowClient(access.tracking_uri)
    client.set_registered_model_tag(name, CREATOR_TAG, access.username)
    client.set_registered_model_tag(name, TEAM_TAG, team)


def require_promote_right(access: Access, name: str) -> None:
    """Promotion needs MANAGE on the registered model, held as one of its team's promoters. Checked before any write."""
    tags = _model_tags(access.tracking_uri, name, missing_hint="see `vlp models list`")
    if access.is_admin:
        return
    team = tags.get(TEAM_TAG)
    held = access.level(REGISTERED_MODEL, name)
    if held != MANAGE:
        holders = f"; team {team!r}'s promoters hold it" if team else ""
        raise PermissionRefused(f"cannot promote {name}: MLflow user {access.username!r} lacks MANAGE on registered model {name!r} "
                                f"(has {held}){holders}")
    if team is not None and PROMOTERS not in access.teams().get(team, set()):
        raise PermissionRefused(f"cannot promote {name}: MLflow user {access.username!r} lacks the promoter right of team {team!r} "
                                f"on registered model {name!r} (its MANAGE comes from creating the model, not from the team)")


def lower_creator_grant(access: Access, name: str) -> None:
    """After a promotion: a creator who is no promoter keeps only EDIT (MLflow made them owner at creation)."""
    from mlflow.tracking import MlflowClient

    tags = _model_tags(access.tracking_uri, name)
    creator, team = tags.get(CREATOR_TAG), tags.get(TEAM_TAG)
    if not creator or not team or creator == access.username or tags.get(CREATOR_LOWERED_TAG) == creator:
        return
    roster = rosters(access.auth).get(team, Roster(team))
    if creator in roster.members and creator not in roster.promoters:
        _set(access.auth, creator, REGISTERED_MODEL, name, EDIT)
    MlflowClient(access.tracking_uri).set_registered_model_tag(name, CREATOR_LOWERED_TAG, creator)


def reconcile_team_resources(tracking_uri: str, all_rosters: dict[str, Roster]) -> list[str]:
    """As an admin: every experiment and registered model tagged with a team gets exactly the team grants
    (new members gain access, removed ones lose it, creators who are no promoters drop to EDIT)."""
    from mlflow.server.auth.client import AuthServiceClient
    from mlflow.server.auth.routes import LIST_USERS
    from mlflow.tracking import MlflowClient

    auth = AuthServiceClient(tracking_uri)
    client = MlflowClient(tracking_uri)
    users = [user["username"] for user in auth._request(LIST_USERS, "GET").get("users", []) if not user.get("is_admin")]
    resources = [(EXPERIMENT, e.experiment_id, e.tags.get(TEAM_TAG), EDIT) for e in client.search_experiments()]
    resources += [(REGISTERED_MODEL, m.name, m.tags.get(TEAM_TAG), MANAGE) for m in client.search_registered_models()]
    changed = []
    for resource_type, resource_id, team, promoter_level in resources:
        if team is None:
            continue
        wanted = desired_levels(all_rosters, team, promoter_level)
        for user in users:
            held = auth.get_user_permission(user, resource_type, resource_id).permission
            target = wanted.get(user)
            if target is not None and held != target:
                _set(auth, user, resource_type, resource_id, target)
                changed.append(f"{user}: {resource_type} {resource_id} {held} -> {target}")
            elif target is None and RANK.get(held, 0) > RANK[READ]:
                auth.revoke_user_permission(user, resource_type, resource_id)
                changed.append(f"{user}: {resource_type} {resource_id} {held} -> revoked")
    return changed


def _claim(access: Access, resource_type: str, resource_id: str, what: str, owner: str | None, team: str) -> bool:
    """True when the caller should share the resource now (it is untagged and the caller owns it)."""
    if owner == team:
        return False
    if owner is not None:
        raise PermissionRefused(f"{what} belongs to team {owner!r}, not {team!r}: MLflow user {access.username!r} lacks EDIT on it; "
                                "use another name")
    # Untagged and not ours: another member created it and is sharing it now (or `vlp teams sync` will).
    return access.level(resource_type, resource_id) == MANAGE


def _grant_team(access: Access, resource_type: str, resource_id: str, team: str, promoter_level: str) -> None:
    for user, level in sorted(desired_levels(rosters(access.auth), team, promoter_level).items()):
        if user != access.username:
            _set(access.auth, user, resource_type, resource_id, level)


def _set(auth, user: str, resource_type: str, resource_id: str, level: str) -> None:
    """Grant `level`; MLflow's grant route only creates, so an existing grant is revoked and granted again."""
    from mlflow.exceptions import MlflowException

    for attempt in range(3):
        try:
            auth.grant_user_permission(user, resource_type, resource_id, level)
            return
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS" or attempt == 2:
                raise
        try:
            auth.revoke_user_permission(user, resource_type, resource_id)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":  # another writer revoked it first
                raise


def _model_tags(tracking_uri: str, name: str, missing_hint: str | None = None) -> dict[str, str]:
    """The model's tags; {} when it does not exist, or when the caller may not read it (the server answers
    403 for both where the default permission is NO_PERMISSIONS; a version of it is refused by the server)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return dict(MlflowClient(tracking_uri).get_registered_model(name).tags)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST" and not denied(err):
            raise
        if missing_hint is not None:
            reason = "does not exist" if err.error_code == "RESOURCE_DOES_NOT_EXIST" else f"is not readable by MLflow user {current_user()!r} (or does not exist)"
            raise PermissionRefused(f"registered model {name!r} {reason} ({missing_hint})") from None
        return {}


def denied(err) -> bool:
    """MLflow's refusal of a request for lack of permission (the auth app answers a bare 403)."""
    return err.error_code == "PERMISSION_DENIED" or "error code 403" in str(err)
