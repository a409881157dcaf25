"""daphne as this project runs it: request bodies reach Django as they were sent.

Twisted, under daphne, parses every POST form body (URL-encoded and multipart) into its own
``request.args`` before daphne hands the raw body to Django, which parses it again; daphne
never reads ``args``. A multipart body Twisted's parser refuses is answered by Twisted itself:
an empty 400 that reaches neither Django nor the logs (daphne issue #447). One such body is a
form without parts, which a browser sends for ``fetch(url, {method: "POST", body: new
FormData()})``: a cancel or retry button's request failed before the API saw it.
Twisted's ``parsePOSTFormSubmission=False`` turns that parsing off; daphne does not expose it,
so daphne's request class gets it as its default here.
"""

import inspect

from twisted.web import http


def pass_request_bodies_through() -> None:
    """Make daphne's requests skip Twisted's form parsing (idempotent)."""
    from daphne.http_protocol import WebRequest

    if getattr(WebRequest, "hitl_passes_bodies_through", False):
        return
    if "parsePOSTFormSubmission" not in inspect.signature(http.Request.__init__).parameters:
        # A Twisted older than the option: it keeps parsing, as it always did.
        return
    create = WebRequest.__init__

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)
        create(self, *args, **kwargs)

    WebRequest.__init__ = __init__
    WebRequest.hitl_passes_bodies_through = True
