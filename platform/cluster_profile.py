"""A cluster profile: where `vlp submit` sends an experiment, and what its pods get on Kubernetes.

The chart (`charts/vlp`) renders one of these into a ConfigMap. A profile holds names and
addresses only: pods get credentials from Kubernetes Secrets named here (by name and key), and the
KFP API token comes from an environment variable or a token file named here. A profile never holds
a secret value, and loading refuses fields that look like one (see `vlp.platform.profiles`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vlp.platform.launch.kubernetes_pods import SecretEnv, Toleration

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$"
# Kubernetes object names (DNS-1123 subdomain) and label-safe names.
K8S_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"


class ProfileSection(BaseModel):
    """Unknown keys are errors, and a loaded profile never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True)


def _http_url(value: str, field: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{field} must be an http:// or https:// URL")
    return value.rstrip("/")


class KfpAuth(ProfileSection):
    """How `vlp` authenticates to the KFP API: a bearer token read at call time, never stored in the profile."""

    token_env: str | None = None
    """Environment variable holding the bearer token (e.g. `export VLP_KFP_TOKEN=$(kubectl create token ...)`)."""
    token_path: str | None = None
    """File holding the bearer token; in a pod, the service-account token `/var/run/secrets/kubernetes.io/serviceaccount/token`."""

    @field_validator("token_env")
    @classmethod
    def _names_a_variable(cls, value: str | None) -> str | None:
        if value is not None and not re.match(ENV_NAME, value):
            raise ValueError("must name an environment variable (letters, digits, _), not hold the token itself")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "KfpAuth":
        if self.token_env and self.token_path:
            raise ValueError("set kfp.auth.token_env or kfp.auth.token_path, not both")
        return self


class KfpSection(ProfileSection):
    """The Kubeflow Pipelines installation that runs the pipeline."""

    host: str
    """KFP API endpoint, such as `https://kubeflow.example.com/pipeline` or `http://localhost:8888` through a port-forward."""
    namespace: str | None = Field(None, pattern=K8S_NAME)
    """KFP namespace for multi-user Kubeflow (your profile namespace); leave empty for single-user KFP."""
    service_account: str | None = Field(None, pattern=K8S_NAME)
    """ServiceAccount the pipeline's step pods run as; it must be allowed to create Volcano jobs (the chart's Role)."""
    experiment: str | None = None
    """KFP experiment that runs are filed under; default: the experiment file's `team`."""
    ui_url: str | None = None
    """Base URL of the KFP UI for run links; default: `host`."""
    auth: KfpAuth = KfpAuth()
    """Bearer-token source; with neither field set, requests carry no token (e.g. through `kubectl port-forward`)."""

    @field_validator("host")
    @classmethod
    def _host_is_url(cls, value: str) -> str:
        return _http_url(value, "kfp.host")

    @field_validator("ui_url")
    @classmethod
    def _ui_is_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "kfp.ui_url")


class MlflowCredentialsSecret(ProfileSection):
    """The Secret (name and keys) that gives pipeline pods their MLflow login."""

    name: str = Field(pattern=K8S_NAME)
    """Name of the Secret."""
    username_key: str | None = "username"
    """Key holding the user name (→ MLFLOW_TRACKING_USERNAME)."""
    password_key: str | None = "password"
    """Key holding the password (→ MLFLOW_TRACKING_PASSWORD)."""
    token_key: str | None = None
    """Key holding a bearer token instead (→ MLFLOW_TRACKING_TOKEN)."""


class MlflowSection(ProfileSection):
    """The MLflow tracking server the pipeline logs to."""

    tracking_uri: str
    """Tracking URI as the cluster's pods reach it (the chart's in-cluster service URL)."""
    external_uri: str | None = None
    """Tracking URI as your machine reaches it (e.g. the ingress); `vlp runs --profile` reads MLflow runs there. Empty: KFP state only."""
    credentials_secret: MlflowCredentialsSecret | None = None
    """Secret with the MLflow login for pods; empty when the server has no authentication."""

    @field_validator("tracking_uri")
    @classmethod
    def _tracking_is_url(cls, value: str) -> str:
        return _http_url(value, "mlflow.tracking_uri")


class S3CredentialsSecret(ProfileSection):
    """The Secret (name and keys) that gives pipeline and training pods their S3 credentials."""

    name: str = Field(pattern=K8S_NAME)
    """Name of the Secret."""
    access_key_id_key: str = "AWS_ACCESS_KEY_ID"
    """Key holding the access key id (→ AWS_ACCESS_KEY_ID)."""
    secret_access_key_key: str = "AWS_SECRET_ACCESS_KEY"
    """Key holding the secret access key (→ AWS_SECRET_ACCESS_KEY)."""


class S3Section(ProfileSection):
    """Object storage for datasets, shards and checkpoints."""

    endpoint_url: str | None = None
    """AWS_ENDPOINT_URL for S3-compatible stores (MinIO, Ceph); empty for AWS."""
    region: str | None = None
    """AWS_DEFAULT_REGION; empty leaves it unset."""
    credentials_secret: S3CredentialsSecret | None = None
    """Secret with S3 credentials; empty when pods get access another way (IAM roles for service accounts)."""


class SchedulerArgs(ProfileSection):
    """TorchX `kubernetes` scheduler options (`torchx runopts kubernetes`)."""

    queue: str = Field(pattern=K8S_NAME)
    """Volcano queue for training jobs when the team has none in `team_queues`."""
    namespace: str | None = Field(None, pattern=K8S_NAME)
    """Namespace of the training jobs; default: the profile's `namespace`."""
    service_account: str | None = Field(None, pattern=K8S_NAME)
    """ServiceAccount of the training pods."""
    priority_class: str | None = Field(None, pattern=K8S_NAME)
    """PriorityClass of the training jobs."""


class TorchxSection(ProfileSection):
    """How training steps launch their multi-node jobs."""

    scheduler: Literal["kubernetes"] = "kubernetes"
    """TorchX scheduler: `kubernetes` runs each training step as a Volcano job."""
    scheduler_args: SchedulerArgs
    """Scheduler options."""


class StepPods(ProfileSection):
    """The pipeline's step pods. They orchestrate (open the MLflow run, prepare data, launch and wait for
    the training job, evaluate, register), so they get modest CPU and memory and never a GPU."""

    cpu_request: str = Field("250m", pattern=QUANTITY)
    """CPU request of each step pod."""
    memory_request: str = Field("1Gi", pattern=QUANTITY)
    """Memory request of each step pod."""
    cpu_limit: str = Field("2", pattern=QUANTITY)
    """CPU limit of each step pod."""
    memory_limit: str = Field("8Gi", pattern=QUANTITY)
    """Memory limit of each step pod (data preparation and evaluation run in it)."""
    node_selector: dict[str, str] = {}
    """Node labels the step pods must land on (e.g. a CPU node pool)."""
    tolerations: tuple[Toleration, ...] = ()
    """Taints the step pods tolerate."""
    timeout_seconds: int = Field(3600, ge=60)
    """Deadline of each step other than training."""
    train_timeout_seconds: int = Field(7 * 24 * 3600, ge=60)
    """Deadline of a training step, which waits for its whole Volcano job."""
    retries: int = Field(2, ge=0, le=10)
    """Retries of the prepare-data, evaluate and register steps; training relies on torchrun's `resources.max_restarts`."""
    retry_backoff: str = Field("30s", pattern=r"^[0-9]+s$")
    """First wait before a retry (doubles each time)."""


class ClusterProfile(ProfileSection):
    """A named cluster profile (`vlp submit --profile NAME`)."""

    name: str = Field(pattern=NAME_PATTERN)
    """Profile name; `local` is built in and cannot be redefined."""
    mode: Literal["cluster"] = "cluster"
    """Always `cluster` in a file; `local` is the built-in profile for this machine."""
    description: str = ""
    """Free text shown by `vlp profiles list`."""
    namespace: str = Field(pattern=K8S_NAME)
    """Kubernetes namespace of the installation (the chart's release namespace): training jobs run here."""
    image: str
    """Container image with vlp installed; every step and training pod runs it (built from `Containerfile`, docs/cluster.md)."""
    image_lock_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    """sha256 of the `requirements.lock` the image was built from (its label `io.vlp.lock-sha256`); `vlp submit`
    refuses to submit when the local lock differs (`--allow-drift` overrides). Empty: not checked, with a warning."""
    storage_root: str
    """Root for datasets, shards and checkpoints, shared by every pod: `s3://bucket/prefix`."""
    kfp: KfpSection
    """The Kubeflow Pipelines API."""
    mlflow: MlflowSection
    """The MLflow tracking server."""
    s3: S3Section = S3Section()
    """Object storage endpoint and credentials."""
    torchx: TorchxSection
    """TorchX scheduler and its options."""
    team_queues: dict[str, str] = {}
    """Volcano queue per team (`team: queue`); an experiment's `team` picks its queue, others use `torchx.scheduler_args.queue`."""
    queue_capability: dict[str, dict[str, str | int]] = {}
    """Capability of each Volcano queue (`queue: {cpu: "384", memory: 4608Gi, nvidia.com/gpu: 32}`, as the chart's
    `teams` set it); `vlp submit` refuses a job whose whole gang exceeds its queue's, which would stay Pending."""
    gpu_resource: str = "nvidia.com/gpu"
    """Extended resource name of a GPU on the nodes (e.g. `amd.com/gpu`); training pods request `resources.gpus_per_node` of it."""
    accelerator_type: str | None = None
    """GPU model that training pods must land on (e.g. `NVIDIA-A100-SXM4-80GB`), matched against `accelerator_label`."""
    accelerator_label: str = "nvidia.com/gpu.product"
    """Node label carrying the GPU model (GPU feature discovery's label; on GKE `cloud.google.com/gke-accelerator`)."""
    node_selector: dict[str, str] = {}
    """Node labels the training pods must land on."""
    tolerations: tuple[Toleration, ...] = ()
    """Taints the training pods tolerate (e.g. `nvidia.com/gpu` on GPU nodes)."""
    worker_cpu: int = Field(8, ge=1)
    """CPU cores per training node (TorchX requests a little less for the kubelet)."""
    worker_memory_mb: int = Field(32768, ge=1024)
    """Memory per training node in MB."""
    training_env: dict[str, str] = {}
    """Plain environment variables of the training pods, such as NCCL's (`NCCL_SOCKET_IFNAME`, `NCCL_IB_HCA`); never credentials."""
    image_pull_secrets: tuple[str, ...] = ()
    """Secrets for pulling `image` from a private registry (step and training pods)."""
    steps: StepPods = StepPods()
    """The pipeline's step pods."""

    @field_validator("storage_root")
    @classmethod
    def _storage_is_shared(cls, value: str) -> str:
        if not value.startswith("s3://") or len(value) <= len("s3://"):
            raise ValueError("storage_root must be an s3:// URI: pods on different nodes share nothing else")
        return value.rstrip("/")

    @field_validator("name")
    @classmethod
    def _not_local(cls, value: str) -> str:
        if value == "local":
            raise ValueError("`local` is the built-in profile; give this one another name")
        return value

    @field_validator("training_env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(ENV_NAME, name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return value

    @property
    def targets_gpu_nodes(self) -> bool:
        return bool(self.gpu_nodes_reason)

    @property
    def gpu_nodes_reason(self) -> str:
        """Why the training pods land on GPU nodes (an accelerator type, or a toleration of the GPU taint); empty if not."""
        if self.accelerator_type:
            return f"accelerator_type {self.accelerator_type}"
        for toleration in self.tolerations:
            if toleration.key == self.gpu_resource:
                return f"a toleration of the {self.gpu_resource} taint"
        return ""

    def queue_for(self, team: str | None) -> str:
        return self.team_queues.get(team or "", self.torchx.scheduler_args.queue)

    def scheduler_cfg(self, team: str | None = None) -> dict[str, str]:
        args = self.torchx.scheduler_args
        cfg = {"queue": self.queue_for(team), "namespace": args.namespace or self.namespace}
        if args.service_account:
            cfg["service_account"] = args.service_account
        if args.priority_class:
            cfg["priority_class"] = args.priority_class
        return cfg

    def secret_env(self) -> tuple[SecretEnv, ...]:
        """Credentials every pipeline and training pod gets from Secrets."""
        items: list[SecretEnv] = []
        s3 = self.s3.credentials_secret
        if s3 is not None:
            items.append(SecretEnv(env="AWS_ACCESS_KEY_ID", secret=s3.name, key=s3.access_key_id_key))
            items.append(SecretEnv(env="AWS_SECRET_ACCESS_KEY", secret=s3.name, key=s3.secret_access_key_key))
        mlflow = self.mlflow.credentials_secret
        if mlflow is not None:
            for env, key in (
                ("MLFLOW_TRACKING_USERNAME", mlflow.username_key),
                ("MLFLOW_TRACKING_PASSWORD", mlflow.password_key),
                ("MLFLOW_TRACKING_TOKEN", mlflow.token_key),
            ):
                if key:
                    items.append(SecretEnv(env=env, secret=mlflow.name, key=key))
        return tuple(items)

    def plain_env(self) -> dict[str, str]:
        """Non-secret settings every pipeline and training pod gets as plain environment variables."""
        env = {}
        if self.s3.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.s3.endpoint_url
        if self.s3.region:
            env["AWS_DEFAULT_REGION"] = self.s3.region
        return env
