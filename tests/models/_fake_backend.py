"""A backend registered from outside ``secfoundry.models`` (as an app's ``system:`` backend is)."""

from __future__ import annotations

from typing import Any

from secfoundry.models.base import Capabilities, LanguageModel
from secfoundry.models.registry import register_backend


class EchoModel(LanguageModel):
    def __init__(self, target: str, **opts: Any):
        self.spec = f"fake:{target}"
        self.target = target
        self.opts = opts

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(generate=True)

    def generate(self, prompts, config=None):
        return [str(p) for p in prompts]

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "backend": "fake"}


@register_backend("fake", options={"greeting"})
def load_fake(ms, **opts):
    return EchoModel(ms.target, **opts)
