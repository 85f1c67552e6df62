"""`resources:` — how many machines and processes."""

from __future__ import annotations

from pydantic import Field

from vlp.platform.spec.base import Section


class ResourcesSection(Section):
    """Shape of the distributed job: `nodes` × `procs_per_node` processes under torchrun."""

    nodes: int = Field(1, ge=1, le=1024)
    """Number of nodes (TorchX replicas)."""
    procs_per_node: int = Field(1, ge=1, le=64)
    """Processes per node (one per GPU on GPU nodes)."""
    gpus_per_node: int = Field(0, ge=0, le=16)
    """GPUs requested per node; 0 trains on CPU with the gloo backend."""
    max_restarts: int = Field(0, ge=0, le=100)
    """How often torchrun restarts the workers after a failure before the step fails."""

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node

    @property
    def torchx_j(self) -> str:
        return f"{self.nodes}x{self.procs_per_node}"
