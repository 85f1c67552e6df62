"""Kubeflow Pipelines on a cluster through `kfp.Client` (KFP v2beta1 API): submit a compiled
pipeline, read run state, terminate runs.

The bearer token is read when the client is built (from the environment variable or file the
profile names) and handed to `kfp.Client(existing_token=...)`, which sends `Authorization: Bearer`.
It is never logged or printed: every API error becomes one `ClusterError` line without it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from vlp.platform.cluster_profile import ClusterProfile, KfpAuth
from vlp.platform.errors import ClusterError, ProfileError

TERMINAL_STATES = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"})


@dataclass(frozen=True)
class SubmittedRun:
    run_id: str
    run_name: str
    experiment: str
    url: str


def bearer_token(auth: KfpAuth, profile_name: str) -> str | None:
    if auth.token_env:
        token = os.environ.get(auth.token_env, "").strip()
        if not token:
            raise ProfileError(f"profile {profile_name}: kfp.auth.token_env names ${auth.token_env}, which is not set (export a fresh token)")
        return token
    if auth.token_path:
        try:
            token = Path(auth.token_path).expanduser().read_text().strip()
        except OSError:
            raise ProfileError(f"profile {profile_name}: kfp.auth.token_path {auth.token_path} cannot be read") from None
        if not token:
            raise ProfileError(f"profile {profile_name}: kfp.auth.token_path {auth.token_path} is empty")
        return token
    return None


class KfpCluster:
    """The KFP API of one cluster profile."""

    def __init__(self, profile: ClusterProfile):
        self.profile = profile
        self._client = None
        self._token: str | None = None

    @property
    def host(self) -> str:
        return self.profile.kfp.host

    def run_url(self, run_id: str) -> str:
        return f"{self.profile.kfp.ui_url or self.host}/#/runs/details/{run_id}"

    def submit(self, pipeline_file: Path, run_name: str, experiment: str, arguments: dict[str, str]) -> SubmittedRun:
        """Create (or reuse) the KFP experiment and start a run of the compiled pipeline in it."""
        kfp = self.profile.kfp
        with self._calling("submitting the run"):
            result = self.client().create_run_from_pipeline_package(
                str(pipeline_file),
                arguments=arguments,
                run_name=run_name,
                experiment_name=experiment,
                namespace=kfp.namespace,
                service_account=kfp.service_account,
                enable_caching=False,
            )
        return SubmittedRun(run_id=result.run_id, run_name=run_name, experiment=experiment, url=self.run_url(result.run_id))

    def get_run(self, run_id: str):
        with self._calling(f"reading run {run_id}"):
            return self.client().get_run(run_id)

    def list_runs(self, limit: int, name_contains: str | None = None) -> list:
        query = None
        if name_contains:
            query = json.dumps({"predicates": [{"operation": "IS_SUBSTRING", "key": "display_name", "stringValue": name_contains}]})
        with self._calling("listing runs"):
            response = self.client().list_runs(page_size=limit, sort_by="created_at desc", namespace=self.profile.kfp.namespace, filter=query)
        return list(response.runs or [])

    def terminate(self, run_id: str) -> None:
        with self._calling(f"terminating run {run_id}"):
            self.client().terminate_run(run_id)

    def client(self):
        if self._client is None:
            self._token = bearer_token(self.profile.kfp.auth, self.profile.name)
            with self._calling("connecting"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # kfp.Client warns about server versions on every construction
                import kfp

                if not self.profile.kfp.namespace:
                    # Without a namespace kfp.Client asks /healthz whether KFP is multi-user, retrying any
                    # error five times, 5 s apart; ask once first so a bad token fails at once.
                    self._check_health()
                self._client = kfp.Client(
                    host=self.host, namespace=self.profile.kfp.namespace or "kubeflow",
                    existing_token=self._token, ui_host=self.profile.kfp.ui_url,
                )
        return self._client

    def _check_health(self) -> None:
        import kfp_server_api

        config = kfp_server_api.Configuration(host=self.host)
        if self._token:
            config.api_key["authorization"] = self._token
            config.api_key_prefix["authorization"] = "Bearer"
        kfp_server_api.HealthzServiceApi(kfp_server_api.ApiClient(config)).healthz_service_get_healthz()

    @contextlib.contextmanager
    def _calling(self, action: str):
        """Turn the client's errors into one line; kfp.Client also prints links on stdout, which we print ourselves."""
        import kfp_server_api
        import urllib3

        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        except kfp_server_api.ApiException as err:
            raise ClusterError(self._scrub(self._describe(err, action))) from None
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as err:
            reason = getattr(err, "reason", None) or err
            raise ClusterError(self._scrub(f"cannot reach KFP at {self.host} while {action}: {type(reason).__name__}")) from None

    def _describe(self, err, action: str) -> str:
        where = f"KFP at {self.host}"
        auth = self.profile.kfp.auth
        source = f"${auth.token_env}" if auth.token_env else auth.token_path
        if err.status == 401:
            if source:
                return f"{where} rejected the token from {source} (401 Unauthorized) while {action}: it has expired or is invalid; get a fresh one"
            return f"{where} requires authentication (401 Unauthorized) while {action}: set kfp.auth.token_env in profile {self.profile.name}"
        if err.status == 403:
            namespace = self.profile.kfp.namespace or "the default namespace"
            return f"{where} denied {action} in {namespace} (403 Forbidden): the token's identity lacks access"
        if err.status == 404:
            return f"{where}: not found (404) while {action}"
        if err.status == 0:
            return f"cannot reach KFP at {self.host} while {action}: {err.reason}"
        return f"{where}: {action} failed ({err.status} {err.reason}){_server_message(err)}"

    def _scrub(self, message: str) -> str:
        return message.replace(self._token, "***") if self._token else message


def _server_message(err) -> str:
    try:
        body = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        return ""
    message = body.get("message") or body.get("error") if isinstance(body, dict) else None
    return f": {str(message).splitlines()[0][:200]}" if message else ""
