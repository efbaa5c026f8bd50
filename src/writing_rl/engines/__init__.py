"""RL engine adapters. TRL GRPO is the default; import it only when training (it needs torch)."""
