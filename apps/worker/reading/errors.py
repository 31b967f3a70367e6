"""Why a document could not be read, as a stable code a client may branch on."""

from __future__ import annotations

from enum import StrEnum


class DocumentProblem(StrEnum):
    """The job error codes of documents that cannot be read; none is worth a retry."""

    UNREADABLE = "document_unreadable"  # the bytes do not decode as the type they claim
    TOO_LARGE = "document_too_large"  # too many pixels or pages to read within the limits
    ENCRYPTED = "document_encrypted"  # a PDF that needs a password to open
    TIMEOUT = "document_timeout"  # an engine ran past its time limit on this document


class DocumentRefused(Exception):
    """The document cannot be read; `code` says why (a DocumentProblem)."""

    def __init__(self, problem: DocumentProblem, message: str) -> None:
        super().__init__(message)
        self.code = str(problem)
