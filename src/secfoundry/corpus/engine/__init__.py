"""The corpus engine: recipes, the step API and registry, partition storage, the stage runner.

See ``steps.py`` for the step API (map and global steps) and ``storage.py`` for the on-disk
layout that makes every stage resumable.
"""

from secfoundry.corpus.engine.recipe import EngineConfig, Recipe, StageConfig, StepSpec
from secfoundry.corpus.step import Dropped, GlobalContext, GlobalStep
from secfoundry.corpus.engine.registry import available_steps, build_step, register_step

__all__ = ["Dropped", "EngineConfig", "GlobalContext", "GlobalStep", "Recipe", "StageConfig", "StepSpec",
           "available_steps", "build_step", "register_step"]
