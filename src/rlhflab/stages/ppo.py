"""`ppo` stage: RLHF with PPO from the SFT model against the reward model, on the task's policy
prompts (the trainer and its maths: rlhflab.ppo_trainer). Resumes from its last checkpoint after a
crash; saves the policy selected on validation RM score − β·KL."""

from rlhflab.online_stage import online_stage, train_policy
from rlhflab.ppo_trainer import PPOTrainer


def run(ctx):
    return train_policy(ctx, PPOTrainer, "ppo")


STAGE = online_stage("ppo", run)
