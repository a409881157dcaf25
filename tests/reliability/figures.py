"""Where the fault-injection tests put their figures: printed (``pytest -s``) and written to
``var/reliability/<name>.json``, which RELIABILITY.md quotes."""

import json
from typing import Any

from django.conf import settings


def record(name: str, label: str, figures: dict[str, Any]) -> None:
    print(f"\n{label}:", json.dumps(figures))
    out = settings.DATA_DIR / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(figures, indent=2))


def backend() -> dict[str, str]:
    """Which configuration the figures were measured on."""
    return {
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "broker": "redis" if settings.REDIS_URL else "orm",
    }
