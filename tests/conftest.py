import os

# Tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402

TINY = [
    "seeds=null",  # one run: the quickstart runs three seeds
    "task.n_pretrain=3000", "task.n_sft_train=1000", "task.n_sft_validation=64",

    "task.n_policy_prompts=50", "task.n_policy_validation=20", "task.n_test=20", "task.median_pool=1000",
    "model.hidden_size=128", "model.num_layers=3", "model.num_heads=4", "model.num_kv_heads=4",
    "model.intermediate_size=256",
    "pretrain.optim.epochs=1", "sft.optim.epochs=4", "sft.optim.lr=2e-3", "sft.eval_every=20",
    "sft.n_sample_check=48", "pipeline.progress=false",
    "task.n_preference_train=1500", "task.n_preference_validation=150", "task.n_preference_test=100", "rm.freeze_fraction=0", "rm.optim.lr=5e-4", "rm.optim.batch_size=32",
    "rm.optim.micro_batch_size=16", "rm.eval_every=5",
    "ppo.prompt_batch_size=32", "ppo.minibatch_size=16", "ppo.epochs=10", "ppo.max_steps=10", "ppo.optim.lr=1e-4",
    "ppo.eval_every=4", "ppo.save_every=4",
    # the trainers' end-to-end tests were tuned on raw RM scores and β = 0.05; normalised rewards have tests of
    # their own (test_ppo_end_to_end)
    "ppo.normalize_rewards=false", "ppo.kl_coef=0.05", "task.n_preference_proxy=null", "eval.lc_resamples=10000",
    "dpo.optim.lr=1e-4", "dpo.optim.micro_batch_size=16", "dpo.eval_every=10", "dpo.n_sample_check=48",
    "diversity.n_inputs=16", "diversity.samples_per_input=8", "diversity.policies=[sft,ppo,dpo]",
    "eval.max_inputs_per_test_set=16", "eval.bootstrap=100", "eval.gold_noise=true",
    "kl_sweep.max_steps=3", "kl_sweep.n_inputs=8", "kl_sweep.samples_per_input=4",
    "bon.n=8", "bon.sweep=[1,2,4,8,16]", "bon.sweep_prompts=16", "bon.max_prompts_per_test_set=16",
]


def tiny_config(out, name="tiny", extra=()):
    from rlhflab.config import load_config

    return load_config("quickstart", TINY + [f"output_dir={out}", f"name={name}", *extra])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The real pipeline at a tiny size, shared by the end-to-end tests."""
    from rlhflab.pipeline import run_pipeline
    from rlhflab.stages import REGISTRY

    out = tmp_path_factory.mktemp("runs")
    cfg = tiny_config(out)
    results = run_pipeline(cfg, REGISTRY)
    return cfg, {r.name: r for r in results}


def pytest_collection_modifyitems(config, items):
    """Every test on the tiny pipeline run is slow (`pytest -m "not slow"` runs the pure tests)."""
    for item in items:
        if "tiny_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
