"""Shared base for every section of the experiment file: strict, frozen, documented."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Unknown keys are errors (a typo must not be silently ignored) and configs never change after load."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True)

    def changed_fields(self) -> set[str]:
        """Fields whose value differs from the default. Unlike `model_fields_set` this survives a JSON round
        trip (every pipeline step validates the spec again from JSON, which sets every field)."""
        return {name for name, field in type(self).model_fields.items() if getattr(self, name) != field.get_default(call_default_factory=True)}
