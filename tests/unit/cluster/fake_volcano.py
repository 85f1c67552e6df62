"""The Volcano part of the Kubernetes API as TorchX's kubernetes scheduler calls it (`CustomObjectsApi` on
`batch.volcano.sh/v1alpha1` jobs), in memory: create (409 Conflict for a name that exists), read status, delete.
Each job's phase follows a script: a list of phases, one per status read, the last one repeating."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class FakeVolcano:
    phases_after_create: list[str] = field(default_factory=lambda: ["Running", "Completed"])
    jobs: dict[tuple[str, str], dict] = field(default_factory=dict)
    phases: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def add_job(self, namespace: str, name: str, *phases: str) -> None:
        """A job some earlier attempt created."""
        self.jobs[(namespace, name)] = {"metadata": {"name": name, "namespace": namespace}}
        self.phases[(namespace, name)] = list(phases)

    def created(self) -> list[str]:
        return [name for call, name in self.calls if call == "create"]

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, dry_run=None, **kwargs):
        from kubernetes.client.rest import ApiException

        self._check(group, version, plural)
        name = body["metadata"]["name"]
        if dry_run:
            return body
        self.calls.append(("create", name))
        if (namespace, name) in self.jobs:
            error = ApiException(status=409, reason="Conflict")
            error.body = json.dumps({"reason": "AlreadyExists", "details": {"name": name, "kind": "jobs"}})
            raise error
        self.jobs[(namespace, name)] = body
        self.phases[(namespace, name)] = list(self.phases_after_create)
        return body

    def get_namespaced_custom_object_status(self, group, version, namespace, plural, name, **kwargs):
        from kubernetes.client.rest import ApiException

        self._check(group, version, plural)
        self.calls.append(("status", name))
        if (namespace, name) not in self.jobs:
            raise ApiException(status=404, reason="Not Found")
        phases = self.phases[(namespace, name)]
        phase = phases.pop(0) if len(phases) > 1 else phases[0]
        return {**self.jobs[(namespace, name)], "status": {"state": {"phase": phase}}}

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, **kwargs):
        self._check(group, version, plural)
        self.calls.append(("delete", name))
        self.jobs.pop((namespace, name))
        self.phases.pop((namespace, name))

    @staticmethod
    def _check(group, version, plural) -> None:
        assert (group, version, plural) == ("batch.volcano.sh", "v1alpha1", "jobs"), (group, version, plural)
