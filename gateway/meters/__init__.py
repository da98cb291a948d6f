"""Meter models as register tables (one TOML file per model), block-read planning and the
generic driver that reads them."""

from gateway.meters.driver import MeterDriver
from gateway.meters.plan import Block, plan_blocks, split
from gateway.meters.table import MeterModel, Register, broute_model, builtin_models, load_model

__all__ = [
    "Block",
    "MeterDriver",
    "MeterModel",
    "Register",
    "broute_model",
    "builtin_models",
    "load_model",
    "plan_blocks",
    "split",
]
