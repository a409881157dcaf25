"""The README's integrator example, run as written (bash + curl) against real daphne and
qcluster processes: if the README drifts from the API, this fails."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.realtime.processes import ROOT, Stack

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

BLOCK = re.compile(
    r"<!-- integrator-example:start -->\s*```bash\n(.*?)```\s*<!-- integrator-example:end -->",
    re.S,
)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl (apt-get install curl)")
def test_readme_integrator_example_works_as_written(tmp_path):
    script = BLOCK.search((ROOT / "README.md").read_text()).group(1)
    call_command("hitl_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    # The example workflows are an installed app's workflows.py: every process loads them.
    stack = Stack(tmp_path, os.environ.get("REDIS_URL") or None)
    try:
        stack.start()
        script = script.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{stack.port}")
        # `python` in the README is the project's virtualenv python.
        env = {**stack.env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stack.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    waiting, notified, result = done.stdout.strip().splitlines()
    assert "'event_id': 'approval-" in waiting  # what the run waits for names the event
    assert '"resumed":1' in notified  # the notify resumed it
    assert "'approved': True" in result  # the completed run's result
