"""The link's one error type: a message from central that the device refuses."""

from __future__ import annotations

# Rejection codes, stable for central to match on; the reason says the detail.
CODES = (
    "oversized",  # payload over the topic's size limit
    "malformed",  # not JSON, or nested too deep
    "schema",  # JSON of the wrong shape: unknown keys, wrong types, missing fields
    "unknown_key",  # signed by a key the device was not provisioned with
    "bad_signature",  # signature missing or not valid
    "wrong_device",  # addressed to another device
    "expired",  # past its expiry
    "replayed",  # a plan version not above the last accepted, or a command id seen before
    "invalid_plan",  # fails the site's validation (unsafe timing, unknown phases, ...)
    "unsupported",  # valid, but this device cannot do it
    "refused",  # the controller refused it now (e.g. force-off of a phase that is not green)
)


class Rejected(Exception):
    """Why a message from central was refused; `code` is one of CODES."""

    def __init__(self, code: str, reason: str) -> None:
        assert code in CODES, code
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")
