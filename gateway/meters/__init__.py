"""Meter models as register tables (one TOML file per model) and block-read planning."""

from gateway.meters.plan import Block, plan_blocks
from gateway.meters.table import MeterModel, Register, builtin_models, load_model

__all__ = ["Block", "MeterModel", "Register", "builtin_models", "load_model", "plan_blocks"]
