"""Pipeline parameters from the command line, and checks of the ones pipelines share.

Both happen before any task starts, so a typo costs a second, not a failed run.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from kfp.dsl.graph_component import GraphComponent

from components.deploy.deploy import TARGETS


def check_shared(params: Mapping[str, Any]) -> None:
    """Refuse a bad value of any shared parameter the pipeline has, naming it."""
    if "champion_tolerance" in params and params["champion_tolerance"] < 0:
        raise ValueError(f"champion_tolerance must be >= 0, got {params['champion_tolerance']}")
    if "drift_alpha" in params and not 0 < params["drift_alpha"] < 1:
        raise ValueError(f"drift_alpha must be in (0, 1), got {params['drift_alpha']}")
    if "canary_percent" in params and not 0 <= params["canary_percent"] < 100:
        raise ValueError(f"canary_percent must be in [0, 100), got {params['canary_percent']}")
    if "deploy_target" in params and params["deploy_target"] not in TARGETS:
        raise ValueError(f"deploy_target must be one of {', '.join(TARGETS)}, got {params['deploy_target']!r}")


def defaults(pipeline: GraphComponent) -> dict[str, Any]:
    signature = inspect.signature(pipeline.pipeline_func)
    return {name: p.default for name, p in signature.parameters.items()}


def parse_params(
    pipeline: GraphComponent,
    pairs: list[str],
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    preset: str | None = None,
) -> dict[str, Any]:
    """Typed `k=v` overrides on top of a preset and the pipeline's defaults; unknown names are an error."""
    params = defaults(pipeline)
    presets = presets or {}
    if preset is not None:
        if preset not in presets:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(presets) or 'none'}")
        params.update(presets[preset])
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"--param {pair!r}: expected k=v")
        if key not in params:
            raise ValueError(f"unknown parameter {key!r}; known: {', '.join(params)}")
        kind = type(params[key])
        try:
            if kind is bool:
                if raw.lower() not in ("true", "false"):
                    raise ValueError
                params[key] = raw.lower() == "true"
            else:
                params[key] = kind(raw)
        except ValueError:
            raise ValueError(f"parameter {key}={raw!r} is not a valid {kind.__name__}") from None
    return params
