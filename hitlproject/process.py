"""What this process serves, for the few settings that depend on it.

Set by the process's entry point before Django reads its settings (``hitlproject.asgi``), so a
flag here reaches no other process: not django-q2's forked workers, not a test run that imports
the ASGI application after its settings were read.
"""

# The ASGI server (daphne): HTTP requests and WebSockets, each request's synchronous code in a
# thread of its own. See ``DATABASES`` in settings.
serves_asgi = False
