"""Teams without a server: the teams file, role names, who gets which permission, the membership check; and local
mode (SQLite, no users), where promotion works as before, is audited, and vlp says once that nothing is enforced."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest
from services import VLP

from vlp.platform.errors import VlpUserError
from vlp.platform.teams import MEMBERS, PROMOTERS, Roster, load_teams_document, parse_role_name, require_team, role_name
from vlp.platform.tracking.permissions import EDIT, MANAGE, READ, desired_levels

MODEL = "local-clip"


def test_role_names_round_trip_for_hyphenated_teams():
    for team in ("a", "team-a", "vision-2"):
        for right in (MEMBERS, PROMOTERS):
            assert parse_role_name(role_name(team, right)) == (team, right)
    assert parse_role_name("vlp-team-a-owners") is None and parse_role_name("admins") is None


def test_levels_members_edit_promoters_manage_other_teams_read():
    rosters = {"a": Roster("a", frozenset({"m", "p"}), frozenset({"p"})), "b": Roster("b", frozenset({"o", "p"}), frozenset())}
    assert desired_levels(rosters, "a", MANAGE) == {"m": EDIT, "p": MANAGE, "o": READ}
    assert desired_levels(rosters, "b", EDIT) == {"m": READ, "p": EDIT, "o": EDIT}


def test_the_team_must_be_one_of_the_users():
    require_team("a", "m", {"a": {MEMBERS}})
    with pytest.raises(VlpUserError, match=r"team: 'b' is not one of MLflow user 'm''s teams \(a\)"):
        require_team("b", "m", {"a": {MEMBERS}})


@pytest.mark.parametrize("text, message", [
    ("teams:\n  - {name: a}\n  - {name: a}\n", "team 'a' is listed twice"),
    ("teams:\n  - {name: a, members: ['no spaces']}\n", "is not an MLflow user name"),
    ("teams:\n  - {name: a, owners: [x]}\n", "owners"),
])
def test_a_bad_teams_file_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "teams.yaml"
    path.write_text(text)
    with pytest.raises(VlpUserError, match=message) as refused:
        load_teams_document(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


@pytest.fixture
def local_model(vlp_home, monkeypatch):
    """A registered model with two versions in the local SQLite store, gates recorded as at registration."""
    from mlflow.tracking import MlflowClient

    from vlp.platform.registry.versions import tag_version
    from vlp.platform.state import default_tracking_uri
    from vlp.platform.tracking.local_store import prepare_tracking_store

    monkeypatch.delenv("VLP_PERMISSIONS_NOTICE_SHOWN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    uri = default_tracking_uri()
    prepare_tracking_store(uri)
    client = MlflowClient(uri)
    client.create_registered_model(MODEL)
    for accuracy in (0.5, 0.9):
        version = client.create_model_version(MODEL, str(vlp_home / "model")).version
        tag_version(MODEL, str(version), {"zeroshot/shapes/acc1": accuracy}, ["zeroshot/shapes/acc1 >= 0.4"], "hash", "commit", "candidate")
    return uri


def test_local_promotions_are_audited_and_the_notice_comes_once(local_model, capsys):
    from vlp.platform.registry.versions import promote, promotion_history

    promote(MODEL, "1", "champion")
    promote(MODEL, "2", "champion")
    assert capsys.readouterr().err.count("team permissions are not enforced") == 1
    history = promotion_history(MODEL)
    assert [(e["by"], e["from"], e["version"], e["alias"]) for e in history] == [("alice", None, "1", "champion"), ("alice", "1", "2", "champion")]
    assert history[1]["gates"] == [{"gate": "zeroshot/shapes/acc1 >= 0.4", "value": 0.9, "passed": True}]


def test_local_racing_promotions_settle_and_both_are_in_the_history(local_model):
    from mlflow.tracking import MlflowClient

    from vlp.platform.registry.versions import promote, promotion_history

    barrier, errors = threading.Barrier(2), []

    def racer(version: str) -> None:
        barrier.wait()
        try:
            promote(MODEL, version, "race")
        except Exception as err:  # noqa: BLE001 - asserted below
            errors.append(err)

    threads = [threading.Thread(target=racer, args=(version,)) for version in ("1", "2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    client = MlflowClient(local_model)
    holder = str(client.get_model_version_by_alias(MODEL, "race").version)
    audit = json.loads(client.get_registered_model(MODEL).tags["vlp.alias.race"])
    assert audit["version"] == holder and json.loads(client.get_model_version(MODEL, holder).tags["vlp.promoted.race"]) == audit
    assert sorted(e["version"] for e in promotion_history(MODEL) if e["alias"] == "race") == ["1", "2"]


def test_vlp_teams_and_history_in_local_mode(local_model, vlp_home):
    import os

    env = {**os.environ, "VLP_HOME": str(vlp_home), "PYTHONSAFEPATH": "1"}
    promoted = subprocess.run([VLP, "promote", MODEL, "2"], env=env, capture_output=True, text=True, timeout=120)
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stderr.count("team permissions are not enforced") == 1
    history = json.loads(subprocess.run([VLP, "models", "history", MODEL, "--json"], env=env, capture_output=True, text=True, timeout=120).stdout)
    assert [(e["version"], e["by"]) for e in history] == [("2", "alice")]
    teams = subprocess.run([VLP, "teams", "list", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert json.loads(teams.stdout) == {"enforced": False, "user": None, "teams": []}
    missing = subprocess.run([VLP, "models", "history", "no-such-model"], env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.strip() == "vlp: error: registered model 'no-such-model' does not exist (see `vlp models list`)"
