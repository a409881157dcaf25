"""Signals other apps listen to. The engine never imports its listeners (realtime, approvals)."""

from django.dispatch import Signal

# After commit: event_ids (RunEvent primary keys) and events (the RunEvent rows, as written)
# are durable and may be delivered.
run_events_committed = Signal()

# Inside the cancelling transaction: run_id, wait_ids of the waits that were open.
run_cancelled = Signal()
