"""Teams on MLflow's real basic-auth app: two teams, a member, two promoters and an outsider.

One server for the module (`mlflow server --app-name basic-auth`, default permission NO_PERMISSIONS, so every
right a user has here was granted by vlp). An admin applies the teams file with `vlp teams sync`; the member
runs a tiny experiment with `vlp run`, which creates the team's experiment and registered model and shares them;
then each user tries what their rights allow and what they do not.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest
import yaml
from services import VLP, start_mlflow

ADMIN_PASSWORD = "admin-password-0123"
TEAM, OTHER_TEAM = "team-a", "team-b"
MEMBER, PROMOTER, SECOND_PROMOTER, OUTSIDER = "member", "promoter", "promoter2", "outsider"
MODEL = "team-a-clip"
TEAMS = {"teams": [
    {"name": TEAM, "members": [MEMBER], "promoters": [PROMOTER, SECOND_PROMOTER]},
    {"name": OTHER_TEAM, "members": [OUTSIDER]},
]}
EXPERIMENT = {
    "name": "team-a-shapes", "team": TEAM, "seed": 1,
    "data": {"shapes": {"train_samples": 64, "eval_samples": 32, "shard_size": 32}},
    "model": {"preset": "shapes-vit-micro"},
    "train": {"batch_size": 8, "max_steps": 2, "warmup_steps": 1, "checkpoint_every": 2, "log_every": 1},
    "resources": {"nodes": 1, "procs_per_node": 1},
    "eval": {"batch_size": 32, "zeroshot": True, "retrieval": False, "linear_probe": False, "segmentation": False,
             "modality_gap": False, "per_domain": False, "plots": False},
    "register": {"model_name": MODEL, "gates": ["zeroshot/shapes/acc5 >= 0.0"]},
}


def password(user: str) -> str:
    return ADMIN_PASSWORD if user == "admin" else f"{user}-password-0123"


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_server, s3_bucket):
    service = start_mlflow(tmp_path_factory.mktemp("teams-mlflow"), s3_server.url, s3_bucket, admin_password=ADMIN_PASSWORD)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("teams")


def env_of(user: str, server, workdir) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "VLP_"))}
    return {**env, "MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password(user),
            "VLP_HOME": str(workdir / f"home-{user}"), "PYTHONSAFEPATH": "1"}


def vlp(user: str, server, workdir, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([VLP, *args], env=env_of(user, server, workdir), cwd=workdir, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def synced(server, workdir):
    """The admin applies the teams file; the users are created with their passwords from a folder."""
    teams_file = workdir / "teams.yaml"
    teams_file.write_text(yaml.safe_dump(TEAMS))
    passwords = workdir / "passwords"
    passwords.mkdir()
    for user in (MEMBER, PROMOTER, SECOND_PROMOTER, OUTSIDER):
        (passwords / user).write_text(password(user) + "\n")
    first = vlp("admin", server, workdir, "teams", "sync", str(teams_file), "--passwords-dir", str(passwords))
    assert first.returncode == 0, first.stderr
    return {"teams_file": teams_file, "first": first.stdout}


@pytest.fixture(scope="module")
def member_run(server, workdir, synced):
    """The member runs the team's experiment: it creates the experiment and the registered model (version 1)."""
    path = workdir / "experiment.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT))
    result = vlp(MEMBER, server, workdir, "run", str(path), "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "FINISHED" and outcome["model"] == {"name": MODEL, "version": "1"}, outcome
    # A second version from the same run, registered by the member too (for the promotion race).
    from vlp.platform.registry.versions import tag_version

    with user_env(MEMBER, server):
        member = client(server)
        import mlflow

        version = mlflow.register_model(member.get_model_version(MODEL, "1").source, MODEL).version
        tag_version(MODEL, str(version), {"zeroshot/shapes/acc5": 1.0}, EXPERIMENT["register"]["gates"], "hash", "commit", "candidate", server.url)
    return outcome


class user_env:
    """MLflow's clients read the login from the environment: act as `user` inside the block."""

    def __init__(self, user: str, server):
        self.values = {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password(user), "MLFLOW_TRACKING_URI": server.url}

    def __enter__(self):
        self.saved = {key: os.environ.get(key) for key in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def client(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(server.url)


def permission(server, user: str, resource_type: str, resource_id: str) -> str:
    from mlflow.server.auth.client import AuthServiceClient

    with user_env("admin", server):
        return AuthServiceClient(server.url).get_user_permission(user, resource_type, resource_id).permission


def model_state(server) -> dict:
    """Everything a promotion could change: aliases, model tags, version tags."""
    with user_env("admin", server):
        mlflow_client = client(server)
        model = mlflow_client.get_registered_model(MODEL)
        versions = {v.version: dict(v.tags) for v in mlflow_client.search_model_versions(f"name = '{MODEL}'")}
        return {"aliases": dict(model.aliases), "tags": dict(model.tags), "versions": versions}


def refused_in_one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("vlp: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_sync_is_idempotent_and_teams_show_each_users_rights(server, workdir, synced):
    assert "created user: outsider" in synced["first"] and "assigned: promoter -> vlp-team-team-a-promoters" in synced["first"]
    again = vlp("admin", server, workdir, "teams", "sync", str(synced["teams_file"]))
    assert again.returncode == 0 and again.stdout.strip().endswith("teams in sync (0 changes)"), again.stdout
    shown = json.loads(vlp(PROMOTER, server, workdir, "teams", "list", "--json").stdout)
    assert shown["user"] == PROMOTER and shown["enforced"] is True
    by_team = {team["name"]: team for team in shown["teams"]}
    assert by_team[TEAM]["members"] == [MEMBER, PROMOTER, SECOND_PROMOTER] and by_team[TEAM]["promoters"] == [PROMOTER, SECOND_PROMOTER]
    assert by_team[TEAM]["you"] == ["members", "promoters"] and by_team[OTHER_TEAM]["you"] == []


def test_the_members_run_shares_the_experiment_and_model_with_the_teams(server, member_run):
    experiment_id = member_run_experiment(server, member_run)
    assert permission(server, PROMOTER, "experiment", experiment_id) == "EDIT"
    assert permission(server, OUTSIDER, "experiment", experiment_id) == "READ"
    assert permission(server, PROMOTER, "registered_model", MODEL) == "MANAGE"
    assert permission(server, SECOND_PROMOTER, "registered_model", MODEL) == "MANAGE"
    assert permission(server, OUTSIDER, "registered_model", MODEL) == "READ"
    state = model_state(server)
    assert state["tags"]["vlp.team"] == TEAM and state["tags"]["vlp.created_by"] == MEMBER


def member_run_experiment(server, member_run) -> str:
    with user_env("admin", server):
        return client(server).get_run(member_run["run_id"]).info.experiment_id


def test_the_outsider_reads_but_cannot_log_to_the_teams_experiment(server, member_run):
    from mlflow.exceptions import MlflowException

    run_id = member_run["run_id"]
    with user_env(OUTSIDER, server):
        outsider = client(server)
        run = outsider.get_run(run_id)
        assert run.data.tags["vlp.team"] == TEAM and "train/loss" in run.data.metrics
        assert outsider.get_registered_model(MODEL).name == MODEL
        with pytest.raises(MlflowException) as logged:
            outsider.log_metric(run_id, "outsider/metric", 1.0)
        assert logged.value.error_code == "PERMISSION_DENIED"
        with pytest.raises(MlflowException) as created:
            outsider.create_run(run.info.experiment_id)
        assert created.value.error_code == "PERMISSION_DENIED"
    assert "outsider/metric" not in client_as_admin_run(server, run_id).data.metrics


def client_as_admin_run(server, run_id: str):
    with user_env("admin", server):
        return client(server).get_run(run_id)


def test_the_outsider_cannot_run_in_the_team(server, workdir, member_run):
    path = workdir / "outsider-experiment.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT))
    line = refused_in_one_line(vlp(OUTSIDER, server, workdir, "run", str(path)))
    assert "team: 'team-a'" in line and "'outsider'" in line and "team-b" in line
    # The same check `vlp run` makes before any work (its preflight builds the model first: ~20 s a process under
    # load), in this process: claiming their own team does not let them into team-a's experiment either,
    line = refused_before_running(OUTSIDER, server, {**EXPERIMENT, "team": OTHER_TEAM})
    assert "experiment 'team-a-shapes' belongs to team 'team-a'" in line
    # nor into its registered model under an experiment of their own.
    line = refused_before_running(OUTSIDER, server, {**EXPERIMENT, "team": OTHER_TEAM, "name": "team-b-shapes"})
    assert "registered model 'team-a-clip' belongs to team 'team-a'" in line and "EDIT" in line


def refused_before_running(user: str, server, experiment: dict) -> str:
    from vlp.platform.spec import spec_from_dict
    from vlp.platform.tracking.permissions import PermissionRefused, check_team_access

    with user_env(user, server), pytest.raises(PermissionRefused) as refused:
        check_team_access(spec_from_dict(experiment, source="test"), server.url)
    message = str(refused.value)
    assert refused.value.exit_code == 2 and "\n" not in message, message
    return message


@pytest.mark.parametrize("user, missing", [(OUTSIDER, "lacks MANAGE on registered model 'team-a-clip'"),
                                           (MEMBER, "lacks the promoter right of team 'team-a' on registered model 'team-a-clip'")])
def test_promotion_without_the_right_is_refused_and_changes_nothing(server, workdir, member_run, user, missing):
    before = model_state(server)
    line = refused_in_one_line(vlp(user, server, workdir, "promote", MODEL, "1", "--alias", "champion"))
    assert missing in line and MODEL in line
    assert model_state(server) == before


def test_the_promoter_promotes_and_the_history_shows_who_when_and_the_gates(server, workdir, member_run):
    result = vlp(PROMOTER, server, workdir, "promote", MODEL, "1", "--alias", "champion")
    assert result.returncode == 0, result.stderr
    assert f"{MODEL} version 1 is now @champion" in result.stdout
    history = json.loads(vlp(OUTSIDER, server, workdir, "models", "history", MODEL, "--json").stdout)
    event = [e for e in history if e["alias"] == "champion"][-1]
    assert (event["by"], event["version"], event["from"], event["forced"]) == (PROMOTER, "1", None, False)
    assert event["gates"] == [{"gate": "zeroshot/shapes/acc5 >= 0.0", "value": event["gates"][0]["value"], "passed": True}]
    state = model_state(server)
    assert json.loads(state["versions"]["1"]["vlp.promoted.champion"]) == event
    assert json.loads(state["tags"]["vlp.alias.champion"]) == event
    table = vlp(MEMBER, server, workdir, "models", "history", MODEL)
    assert table.returncode == 0 and PROMOTER in table.stdout and "champion" in table.stdout
    # The member created the model (MLflow made them its owner); the promotion left them EDIT, like every member.
    assert permission(server, MEMBER, "registered_model", MODEL) == "EDIT"


def test_racing_promotions_by_two_promoters_settle(server, workdir, member_run):
    results = {}

    def promote(user: str, version: str) -> None:
        results[user] = vlp(user, server, workdir, "promote", MODEL, version, "--alias", "race")

    threads = [threading.Thread(target=promote, args=pair) for pair in ((PROMOTER, "1"), (SECOND_PROMOTER, "2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results.values():
        assert result.returncode == 0, result.stderr
    state = model_state(server)
    holder = state["aliases"]["race"]
    audit = json.loads(state["tags"]["vlp.alias.race"])
    assert audit["version"] == holder and json.loads(state["versions"][holder]["vlp.promoted.race"]) == audit
    assert audit["by"] == {"1": PROMOTER, "2": SECOND_PROMOTER}[holder]
    with user_env(OUTSIDER, server):
        from vlp.platform.registry.versions import promotion_history

        races = [event for event in promotion_history(MODEL, server.url) if event["alias"] == "race"]
    assert sorted((event["by"], event["version"]) for event in races) == [(PROMOTER, "1"), (SECOND_PROMOTER, "2")]


def test_sync_gives_a_new_member_the_teams_resources_and_an_admin_runs_unhindered(server, workdir, synced, member_run):
    teams = {"teams": [{**TEAMS["teams"][0], "members": [MEMBER, "newcomer"]}, TEAMS["teams"][1]]}
    teams_file = workdir / "teams-with-newcomer.yaml"
    teams_file.write_text(yaml.safe_dump(teams))
    (workdir / "passwords" / "newcomer").write_text(password("newcomer"))
    result = vlp("admin", server, workdir, "teams", "sync", str(teams_file), "--passwords-dir", str(workdir / "passwords"))
    assert result.returncode == 0, result.stderr
    experiment_id = member_run_experiment(server, member_run)
    assert permission(server, "newcomer", "experiment", experiment_id) == "EDIT"
    assert permission(server, "newcomer", "registered_model", MODEL) == "EDIT"
    assert permission(server, OUTSIDER, "registered_model", MODEL) == "READ"
    # MLflow admins pass every check of the server; vlp does not stop them either (the reliability tests run as admin).
    promoted = vlp("admin", server, workdir, "promote", MODEL, "2", "--alias", "admin-pick")
    assert promoted.returncode == 0, promoted.stderr
    from vlp.pipelines.steps.start_run import _join_team_experiment
    from vlp.platform.spec import spec_from_dict
    from vlp.platform.tracking.permissions import check_team_access

    with user_env("admin", server):
        check_team_access(spec_from_dict(EXPERIMENT, source="test"), server.url)
        _join_team_experiment(spec_from_dict({**EXPERIMENT, "name": "admins-own", "team": "tests"}, source="test"), server.url)
        assert client(server).get_experiment_by_name("admins-own").tags["vlp.team"] == "tests"
