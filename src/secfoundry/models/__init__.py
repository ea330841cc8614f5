"""Model backends behind one interface (:class:`LanguageModel`); load any of them with
:func:`load_model` from a spec string such as ``smollm2-135m-instruct`` or ``hf:/path``."""

from secfoundry.models.base import Capabilities, GenerationConfig, LanguageModel, Message, Prompt
from secfoundry.models.registry import load_model
from secfoundry.models.spec import EMBEDDED_ALIAS, ModelSpec, ModelSpecError, parse_spec

__all__ = ["Capabilities", "EMBEDDED_ALIAS", "GenerationConfig", "LanguageModel", "Message", "ModelSpec",
           "ModelSpecError", "Prompt", "load_model", "parse_spec"]
