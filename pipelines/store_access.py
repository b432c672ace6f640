"""How pipeline tasks reach the object store: credentials only as Kubernetes Secret references.

The compiled YAML names the Secret (`manifests/base/object-store-secret.yaml`), never a value,
and takes the endpoint from the ConfigMap of the same name (a run's `store_endpoint` parameter
overrides it). kfp's local runner ignores this platform config: there the tasks read MINIO_*
from the environment.
"""

from kfp import kubernetes
from kfp.dsl import PipelineTask

STORE_SECRET = "fuseml-object-store"
SECRET_KEYS_TO_ENV = {"AWS_ACCESS_KEY_ID": "MINIO_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY": "MINIO_SECRET_KEY"}


def with_store_access(task: PipelineTask) -> PipelineTask:
    kubernetes.use_secret_as_env(task, secret_name=STORE_SECRET, secret_key_to_env=SECRET_KEYS_TO_ENV)
    return kubernetes.use_config_map_as_env(
        task, config_map_name=STORE_SECRET, config_map_key_to_env={"MINIO_ENDPOINT": "MINIO_ENDPOINT"}
    )
