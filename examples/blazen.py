"""Port of Blazen's input requests (shared/seeds/003_925172e85cd92eb5.txt)."""

from django.utils.text import slugify
from rest_framework import serializers

from workflows import Context, workflow

# Ephemeral values: Blazen's ``ctx.session``. This is the memory of the worker process that
# ran the step; nothing stores it. A run continued by another process, or by this one after
# a restart, does not find it. Durable values (Blazen's ``ctx.state``) are step results.
SESSION: dict[str, dict[str, str]] = {}

# The typed response: Blazen's ``respondToInputTyped({requestId, response: {approved, note}})``.
REVIEW_SCHEMA = {
    "type": "object",
    "required": ["approved"],
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
    "additionalProperties": False,
}


class DocumentInput(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    sections = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=5
    )


def draft_section(run_id: str, title: str, section: str) -> dict:
    text = f"{section.capitalize()} of '{title}': lorem ipsum dolor sit amet."
    SESSION.setdefault(run_id, {})[section] = text  # ephemeral: a cache of the full text
    return {"section": section, "words": len(text.split())}  # durable: the step's result


def request_id_for(run_id: str, section: str) -> str:
    return f"review-{slugify(section)}-{run_id}"


@workflow("blazen-document-review", input=DocumentInput)
def blazen_document_review(ctx: Context, data: dict) -> dict:
    """Blazen's input requests (seed 003_925172e85cd92eb5.txt).

    For each section: a step drafts it, then an input request (request id
    ``review-<section>-<run id>``, a prompt, metadata) waits for a typed answer
    ``{"approved": bool, "note": str}`` (``answer_input``, ``manage.py hitl_answer``,
    ``POST /api/v1/input-requests/<id>/answer/``). Several requests in one run; the run holds no
    worker in between. The result says what survived: the drafts (step results, durable)
    always; the cached texts (process memory, ephemeral) only if the same worker process
    kept running.
    """
    title = data["title"]
    drafts, answers = [], []
    for index, section in enumerate(data["sections"]):
        draft = ctx.step(f"draft-{index}", draft_section, ctx.run_id, title, section)
        drafts.append(draft)
        response = ctx.input_request(
            f"review-{index}",
            request_id=request_id_for(ctx.run_id, section),
            prompt=f"Approve the {section} of '{title}'?",
            schema=REVIEW_SCHEMA,
            metadata={"section": section, "words": draft["words"], "title": title},
        )
        answer = response.data or {}
        answers.append(
            {
                "request_id": response.request_id,
                "section": section,
                "approved": bool(answer.get("approved")),
                "note": answer.get("note", ""),
                "responded_by": response.responded_by,
            }
        )
    cached = SESSION.pop(ctx.run_id, {})
    return {
        "approved": all(a["approved"] for a in answers),
        "answers": answers,
        "durable": {"drafts": drafts},
        "ephemeral": {"cached_sections": sorted(cached)},
    }
