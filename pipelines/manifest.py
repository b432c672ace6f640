"""`python -m pipelines manifest MODEL --version V`: the InferenceService the deploy step would apply.

Built by the same `build_inference_service` the deploy step calls, so a cluster managed with
Argo CD or Flux gets the very object a pipeline run would create.
"""

from __future__ import annotations

import argparse
import sys

import yaml


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser("manifest", help="print the InferenceService YAML of one model version")
    command.add_argument("model")
    command.add_argument("--version", required=True, help="the published model version it serves")
    command.add_argument("--namespace", default="fuseml", help="where it goes (default: %(default)s; never kubeflow)")
    command.add_argument("--canary-percent", type=int, help="share of traffic for this version (Knative mode)")
    command.add_argument("--min-replicas", type=int, default=1)
    command.add_argument("--max-replicas", type=int, default=3)
    command.add_argument("--scale-target", type=int, default=8, help="requests in flight per replica")


def render(args: argparse.Namespace) -> str:
    """The InferenceService as YAML; ValueError when the model or an argument is not valid."""
    from kubernetes.client import ApiClient

    from components.deploy.kserve_cluster import Scaling, build_inference_service
    from components.images import image
    from components.registry import model_specs

    if args.model not in model_specs():
        raise ValueError(f"unknown model {args.model!r}; known: {', '.join(model_specs())}")
    isvc = build_inference_service(
        args.model,
        args.namespace,
        args.version,
        image("predictor"),
        canary_percent=args.canary_percent,
        scaling=Scaling(min_replicas=args.min_replicas, max_replicas=args.max_replicas, scale_target=args.scale_target),
    )
    return yaml.safe_dump(ApiClient().sanitize_for_serialization(isvc), sort_keys=False)


def handle(args: argparse.Namespace) -> int:
    try:
        sys.stdout.write(render(args))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
