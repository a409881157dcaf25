"""The workflow the realtime benchmark drives (HITL_WORKFLOW_MODULES=bench.realtime_flows)."""

from workflows import workflow


@workflow("bench-wait", description="Waits for one decision, then finishes.")
def bench_wait(ctx, data):
    decision, _ = ctx.wait_for_event("decision", f"bench-{data['key']}")
    return decision
