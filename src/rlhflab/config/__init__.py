"""Typed experiment config: one YAML file describes a whole experiment.

Defaults are the papers' values (cited beside each field), so a real model gets their settings;
the built-in `quickstart` config scales them to a tiny CPU model. Unknown keys, wrong types and bad
ranges are errors that name the key. `tasks` holds the task sections, `sections` the model and
stage sections, `experiment` the whole, `loading` YAML + `--set` overrides.
"""

from rlhflab.config.base import ConfigError, Section
from rlhflab.config.experiment import ExperimentConfig
from rlhflab.config.loading import BUILTIN, apply_override, builtin_path, dump_config, load_config
from rlhflab.config.sections import (BoNStage, ComparisonsStage, DiversityStage, DPOStage, EvalStage, Generation,
                                     KLSweepStage, ModelSpec, OpenAIJudgeSpec, Optim, Optimizer, Pipeline,
                                     PretrainStage, RMEvalStage, RMStage, SFTStage)
from rlhflab.config.online import GRPOStage, OnlineDPOStage, OnlineRL, PPOStage, RLOOStage
from rlhflab.config.scale import LoRA, Tracking, Train
from rlhflab.config.sweeps import StageSweep, Sweeps
from rlhflab.config.tasks import (DatasetRef, DatasetsTask, DatasetTestSet, FilesTask, FileTestSet, OODSplit,
                                  SyntheticTask, Task, TestSetRole)

__all__ = ["BUILTIN", "BoNStage", "ComparisonsStage", "ConfigError", "DPOStage", "DatasetRef", "DatasetTestSet",
           "DatasetsTask", "DiversityStage", "EvalStage", "ExperimentConfig", "FileTestSet", "FilesTask",
           "GRPOStage", "Generation", "KLSweepStage", "LoRA", "ModelSpec", "OODSplit", "OnlineDPOStage", "OnlineRL", "OpenAIJudgeSpec", "Optim", "Optimizer",
           "PPOStage", "Pipeline", "PretrainStage", "RLOOStage", "RMEvalStage", "RMStage", "SFTStage", "Section",
           "StageSweep", "Sweeps", "Tracking", "Train",
           "SyntheticTask", "Task", "TestSetRole", "apply_override", "builtin_path", "dump_config", "load_config"]
