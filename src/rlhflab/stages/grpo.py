"""`grpo` stage: group relative policy optimisation (Shao et al. 2024) from the SFT model against the
reward model (the trainer and its maths: rlhflab.group_trainer). Off by default; the `methods`
config turns it on. Resumes after a crash; saves the policy selected on validation."""

from rlhflab.group_trainer import GRPOTrainer
from rlhflab.online_stage import online_stage, train_policy


def run(ctx):
    return train_policy(ctx, GRPOTrainer, "grpo")


STAGE = online_stage("grpo", run)
