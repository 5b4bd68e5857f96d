"""`online_dpo` stage: DPO on pairs sampled from the current policy and labelled by the reward model
(Guo et al. 2024; the trainer: rlhflab.online_dpo_trainer). Off by default; the `methods` config
turns it on. Resumes after a crash; saves the policy selected on validation."""

from rlhflab.online_dpo_trainer import OnlineDPOTrainer
from rlhflab.online_stage import online_stage, train_policy


def run(ctx):
    return train_policy(ctx, OnlineDPOTrainer, "online_dpo")


STAGE = online_stage("online_dpo", run)
