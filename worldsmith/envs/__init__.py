"""Learned worlds as environments: ``WorldModelEnv`` (gymnasium), batched rollouts, policies, policy evaluation,
planning and synthetic data (see each module's docstring)."""
