"""One exception type for every client error: an HTTP status and a message saying what is wrong."""

from __future__ import annotations


class RequestError(ValueError):
    """A bad request; `status` is the HTTP status (4xx), the message goes to the client as is."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
