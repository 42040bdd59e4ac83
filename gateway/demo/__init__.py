"""A small OpenAI-compatible upstream: the demo for new users and the test bench's far end.

``sluicegate serve --upstream demo`` runs the gateway in front of it, so a client sees a
stream being moderated with no API key; tests and benchmarks run it on 127.0.0.1 as a real
HTTP upstream whose chunking, wire shape, pace and faults they control per request with
``X-Demo-*`` headers (see ``gateway.demo.controls``). It knows nothing of the gateway.
"""

from gateway.demo.app import create_demo_app
from gateway.demo.app_keys import DEMO_STATE
from gateway.demo.controls import (
    CHUNKING_HEADER,
    COMMENTS_HEADER,
    FAULT_HEADER,
    PACE_HEADER,
    REPLY_HEADER,
    WIRE_HEADER,
)
from gateway.demo.scripts import BILLING, SECRETS, TOUR
from gateway.demo.state import DemoState, RecordedRequest, StreamOutcome, StreamRecord

__all__ = [
    "BILLING",
    "CHUNKING_HEADER",
    "COMMENTS_HEADER",
    "DEMO_STATE",
    "FAULT_HEADER",
    "PACE_HEADER",
    "REPLY_HEADER",
    "SECRETS",
    "TOUR",
    "WIRE_HEADER",
    "DemoState",
    "RecordedRequest",
    "StreamOutcome",
    "StreamRecord",
    "create_demo_app",
]
