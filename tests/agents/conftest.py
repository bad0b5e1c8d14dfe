"""Fixtures of the agent tests; the helpers they share live in agent_fixtures.py (a unique module
name, so `from agent_fixtures import ...` never picks up another folder's conftest)."""

from agent_fixtures import line_data, line_data_no_rewards  # noqa: F401  (fixtures)
