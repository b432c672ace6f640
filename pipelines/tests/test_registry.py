"""The registry imports a pipeline's module only when that pipeline is asked for."""

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.registry import entry, pipeline_names


def test_asking_for_one_pipeline_defines_only_that_one():
    """Each pipeline module costs about a second of kfp graph building on import."""
    probe = (
        "import sys; from pipelines.registry import entry; entry('three-body'); "
        "print(sorted(m for m in ('pipelines.sum', 'pipelines.three_body', 'pipelines.monitor') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "['pipelines.three_body']"


def test_every_name_gives_its_pipeline_and_an_unknown_one_says_which_exist():
    assert pipeline_names() == ["sum", "three-body", "monitor"]
    assert [entry(name).pipeline.name for name in pipeline_names()] == pipeline_names()
    with pytest.raises(ValueError, match="unknown pipeline 'nope'; known: sum, three-body, monitor"):
        entry("nope")
