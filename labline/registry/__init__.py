"""The model registry: versions with lineage, aliases, the promotion gate, reproducible runs.

from labline.registry import Registry
reg = Registry()                       # $LABLINE_DB or .labline/labline.db
reg.register_run(manifest)             # every trained model of a succeeded run
version, model = reg.load_model("champion")
"""

from labline.registry.db import SCHEMA_VERSION, RegistryError
from labline.registry.gate import Check, Decision, GatePolicy
from labline.registry.model_version import ModelVersion
from labline.registry.store import Registry

__all__ = ["Registry", "ModelVersion", "RegistryError", "Decision", "Check", "GatePolicy", "SCHEMA_VERSION"]
