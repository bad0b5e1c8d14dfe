"""Agents inside world models: WorldModelEnv, imagination actor-critic, planners."""
