"""Reading what a finished local run left behind: task outputs and artifacts under the pipeline root."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class LocalRun:
    """One run of kfp's local runner: a folder per task, each with its executor output."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def task_outputs(self, task: str) -> dict[str, Any]:
        """A finished task's executor output (parameters and artifact metadata); {} if it did not run."""
        path = self.run_dir / task / "executor_output.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def output(self, task: str, name: str = "Output") -> Any:
        """A task's output parameter, or None when the task did not run (a gate that stopped it)."""
        return self.task_outputs(task).get("parameterValues", {}).get(name)

    def artifact_path(self, task: str, artifact: str) -> Path:
        return Path(self.task_outputs(task)["artifacts"][artifact]["artifacts"][0]["uri"])

    def artifact_metadata(self, task: str, artifact: str) -> dict[str, Any]:
        return self.task_outputs(task)["artifacts"][artifact]["artifacts"][0]["metadata"]

    def validation_verdict(self, task: str = "validate-data") -> str:
        """The head of a data-validation report: verdict and reasons, without the full table."""
        return self.artifact_path(task, "summary").read_text().split("## Checks")[0].strip()
