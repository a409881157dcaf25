"""The seed scenarios (shared/seeds) as registered workflows.

Imported by the engine at start-up, like every installed app's ``workflows.py``.
"""

from . import awaitly, blazen, resonate, trigger, upstash

__all__ = ["awaitly", "blazen", "resonate", "trigger", "upstash"]
