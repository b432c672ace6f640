"""Where the system learns which models exist: the one place that names the learning problems.

Serving, deploying and monitoring ask `model_specs()`; none imports a problem package. A
module listed in FUSEML_MODEL_SPECS (comma-separated) adds its `SPEC` to the built-in ones,
so a new problem is served, deployed and monitored without editing any of them.
"""

from __future__ import annotations

import importlib
import os

from components.contract import ModelSpec

BUILTIN_SPEC_MODULES = ("components.sum.spec", "components.three_body.spec")
EXTRA_SPECS_VARIABLE = "FUSEML_MODEL_SPECS"


def spec_modules() -> list[str]:
    extra = [name.strip() for name in os.environ.get(EXTRA_SPECS_VARIABLE, "").split(",") if name.strip()]
    return [*BUILTIN_SPEC_MODULES, *extra]


def model_specs() -> dict[str, ModelSpec]:
    """Every registered spec by model name; a module without a valid `SPEC` is an error naming it."""
    specs: dict[str, ModelSpec] = {}
    for module_name in spec_modules():
        spec = getattr(importlib.import_module(module_name), "SPEC", None)
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"{module_name} has no SPEC of type ModelSpec")
        if spec.name in specs:
            raise ValueError(f"model {spec.name!r} is registered twice (again by {module_name})")
        specs[spec.name] = spec
    return specs


def model_spec(name: str) -> ModelSpec:
    specs = model_specs()
    if name not in specs:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(specs)}")
    return specs[name]
