"""The whole experiment: one YAML file, validated, every section typed."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator, model_validator

from rlhflab.config.base import Section
from rlhflab.config.benchmarks import DownstreamStage
from rlhflab.config.sections import (BoNStage, ComparisonsStage, DiversityStage, DPOStage, EvalStage, Generation,
                                     KLSweepStage, ModelSpec, Pipeline, PretrainStage, RMEvalStage,
                                     RMStage, SFTStage)
from rlhflab.config.online import GRPOStage, OnlineDPOStage, PPOStage, RLOOStage
from rlhflab.config.scale import Tracking, Train
from rlhflab.config.sweeps import Sweeps
from rlhflab.config.tasks import SyntheticTask, Task


class ExperimentConfig(Section):
    _source: str | None = PrivateAttr(None)  # the file (or built-in) it was read from; keeps run folders apart
    name: str = Field("quickstart", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = Field(0, ge=0)
    seeds: list[int] | None = Field(
        None, min_length=1, description="run once per seed (as <name>-s<seed>) and aggregate over them; "
        "overrides seed")
    data_seed: int | None = Field(
        None, ge=0, description="seed of the data and the pretrained base (default: seed). A multi-seed run "
        "(`seeds`) keeps one data_seed, so every seed's run shares the data and the base model and varies only "
        "what the seeds' protocol varies: fine-tuning order, sampling, initialisation of heads")
    output_dir: Path = Path("runs")
    task: Task = Field(default_factory=SyntheticTask)
    model: ModelSpec = Field(default_factory=ModelSpec)
    generation: Generation = Field(default_factory=Generation)
    train: Train = Field(default_factory=Train)
    tracking: Tracking = Field(default_factory=Tracking)
    pretrain: PretrainStage = Field(default_factory=PretrainStage)
    sft: SFTStage = Field(default_factory=SFTStage)
    comparisons: ComparisonsStage = Field(default_factory=ComparisonsStage)
    rm: RMStage = Field(default_factory=RMStage)
    bon: BoNStage = Field(default_factory=BoNStage)
    ppo: PPOStage = Field(default_factory=PPOStage)
    dpo: DPOStage = Field(default_factory=DPOStage)
    rloo: RLOOStage = Field(default_factory=RLOOStage)
    grpo: GRPOStage = Field(default_factory=GRPOStage)
    online_dpo: OnlineDPOStage = Field(default_factory=OnlineDPOStage)
    diversity: DiversityStage = Field(default_factory=DiversityStage)
    eval: EvalStage = Field(default_factory=EvalStage)
    kl_sweep: KLSweepStage = Field(default_factory=KLSweepStage)
    rm_eval: RMEvalStage = Field(default_factory=RMEvalStage)
    downstream: DownstreamStage = Field(default_factory=DownstreamStage)
    sweep: Sweeps = Field(default_factory=Sweeps)
    pipeline: Pipeline = Field(default_factory=Pipeline)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        twice = sorted({s for s in seeds or [] if seeds.count(s) > 1})
        if twice:  # one run per seed: a repeated seed would silently run once and count once
            raise ValueError(f"seed {', '.join(map(str, twice))} given more than once; each seed is one run, so "
                             "give distinct seeds (e.g. seeds=[0,1,2])")
        return seeds

    @model_validator(mode="after")
    def _check(self) -> "ExperimentConfig":
        if self.data_seed is None:  # resolved once, so a copy with another seed keeps it
            self.__dict__["data_seed"] = self.seeds[0] if self.seeds else self.seed
        problems = []  # all of them at once: a user fixes a config in one pass, not one error per run
        if self.comparisons.source == "sft_samples" and self.task.kind != "synthetic":
            problems.append("comparisons.source: 'sft_samples' needs simulated annotators, which only "
                            "the synthetic task has; with your own data use comparisons.source: task")
        if ("nli" in self.diversity.metrics and self.diversity.nli_model is None
                and self.task.kind != "synthetic" and self.diversity.enabled):
            problems.append("diversity.nli_model: NLI diversity needs an NLI classifier; set "
                            "diversity.nli_model to a Hugging Face MNLI model (e.g. roberta-large-mnli) "
                            "or remove 'nli' from diversity.metrics")
        if self.eval.enabled and self.eval.judge == "gold" and self.task.kind != "synthetic":
            problems.append("eval.judge: only the synthetic task has a gold reward; with real data use "
                            "rm_proxy, rm, openai or local")
        named = getattr(self.task, "test_sets", None)  # the file and datasets tasks name theirs
        unknown = [s for s in self.downstream.alpaca_eval_sets if isinstance(named, dict) and s not in named]
        if unknown:
            problems.append(f"downstream.alpaca_eval_sets: {', '.join(unknown)} is not a test set of the task "
                            f"(it has {', '.join(sorted(named))}); name the eval test sets to join as AlpacaEval")
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name
