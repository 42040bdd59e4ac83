"""Policies: YAML -> validated models -> compiled, frozen sluice configurations."""

from gateway.policy.compiler import CompiledPolicy, compile_policy
from gateway.policy.errors import Level, PolicyError, Problem
from gateway.policy.loader import BUNDLED_DIR, DEFAULT_POLICY, load_file, load_paths, load_text
from gateway.policy.model import Direction, Policy, policy_json_schema

__all__ = [
    "BUNDLED_DIR",
    "DEFAULT_POLICY",
    "CompiledPolicy",
    "Direction",
    "Level",
    "Policy",
    "PolicyError",
    "Problem",
    "compile_policy",
    "load_file",
    "load_paths",
    "load_text",
    "policy_json_schema",
]
