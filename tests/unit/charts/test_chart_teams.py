"""The chart with two teams: per-team namespaces' RoleBindings and queue admission, and the MLflow permissions Job
(rendered offline with the real helm binary, validated against Kubernetes' schemas and Volcano's Queue CRD)."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from crd_schema import validation_errors
from test_chart import CHART, K8S_VERSION, NAMESPACE, _template_args, helm  # noqa: F401 - `helm` is a fixture

TWO_TEAMS = {
    "mlflow": {"auth": {"enabled": True, "usersSecret": "vlp-mlflow-users"}},
    "teams": [
        {"name": "vision", "weight": 2, "capability": {"cpu": "64", "memory": "256Gi", "nvidia.com/gpu": 8},
         "namespace": "team-vision", "members": ["alice"], "promoters": ["bob"]},
        {"name": "dg", "weight": 1, "capability": {"cpu": "32", "memory": "128Gi"},
         "namespace": "team-dg", "pipelineServiceAccount": "dg-pipelines", "members": ["carol"]},
    ],
}


@pytest.fixture(scope="module")
def values_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("values") / "two-teams.yaml"
    path.write_text(yaml.safe_dump(TWO_TEAMS))
    return path


@pytest.fixture(scope="module")
def docs(helm, values_file):  # noqa: F811
    return [d for d in yaml.safe_load_all(helm(*_template_args("--values", str(values_file))).stdout) if d]


def named(docs, kind: str, namespace: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (namespace is None or d["metadata"].get("namespace") == namespace)]


def test_lints_and_every_manifest_validates(helm, values_file, docs):  # noqa: F811
    assert "0 chart(s) failed" in helm("lint", "--strict", str(CHART), "--values", str(values_file), "--namespace", NAMESPACE).stdout
    for doc in docs:
        if doc["apiVersion"].startswith("scheduling.volcano.sh/"):
            assert validation_errors(doc) == []
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_each_team_namespace_binds_its_pipeline_account_to_volcano_jobs_only(docs):
    for team, account in (("vision", "default-editor"), ("dg", "dg-pipelines")):
        namespace = f"team-{team}"
        (role,), (binding,) = named(docs, "Role", namespace), named(docs, "RoleBinding", namespace)
        assert {rule["apiGroups"][0]: set(rule["resources"]) for rule in role["rules"]} == {
            "batch.volcano.sh": {"jobs"}, "": {"pods", "pods/log", "services", "events"}}
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    assert not any("secrets" in rule["resources"] for role in named(docs, "Role") for rule in role["rules"])


def test_volcano_jobs_in_a_team_namespace_are_admitted_only_into_its_queue(docs):
    policies = {p["metadata"]["name"]: p for p in named(docs, "ValidatingAdmissionPolicy")}
    bindings = named(docs, "ValidatingAdmissionPolicyBinding")
    assert len(policies) == 2 and {b["spec"]["policyName"] for b in bindings} == set(policies)
    assert all(b["spec"]["validationActions"] == ["Deny"] for b in bindings)
    queues = {q["metadata"]["labels"]["vlp.io/team"]: q["metadata"]["name"] for q in named(docs, "Queue")}
    for policy in policies.values():
        team = policy["metadata"]["labels"]["vlp.io/team"]
        spec = policy["spec"]
        assert spec["matchConstraints"]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": f"team-{team}"}
        assert spec["matchConstraints"]["resourceRules"][0]["resources"] == ["jobs"]
        assert spec["validations"][0]["expression"] == f"has(object.spec.queue) && object.spec.queue == '{queues[team]}'"
        assert spec["failurePolicy"] == "Fail"


def test_permissions_job_applies_the_teams_with_the_admin_login(docs):
    from vlp.platform.teams import TeamsDocument

    (config,) = [d for d in named(docs, "ConfigMap") if d["metadata"]["labels"]["app.kubernetes.io/component"] == "mlflow-permissions"]
    teams = TeamsDocument.model_validate(yaml.safe_load(config["data"]["teams.yaml"]))
    assert [(t.name, t.members, t.promoters) for t in teams.teams] == [("vision", ("alice",), ("bob",)), ("dg", ("carol",), ())]
    (job,) = named(docs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["vlp"] and container["args"] == ["teams", "sync", "/etc/vlp/teams/teams.yaml", "--passwords-dir=/etc/vlp/passwords"]
    env = {item["name"]: item for item in container["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"].startswith("http://vlp-mlflow.")
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "vlp-mlflow-admin", "key": "password"}
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["passwords"]["secret"] == {"secretName": "vlp-mlflow-users"}


def test_without_basic_auth_there_is_no_permissions_job(helm):  # noqa: F811
    docs = [d for d in yaml.safe_load_all(helm(*_template_args()).stdout) if d]
    assert not named(docs, "Job") and not named(docs, "ValidatingAdmissionPolicy")
