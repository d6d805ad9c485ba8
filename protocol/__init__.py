"""Numerek's message contract: MQTT topics and JSON payloads shared by every role.

This package is imported by the server, kiosks, counters and displays. It depends on
pydantic only (paho-mqtt lazily, in :mod:`protocol.mqtt`), so a counter Pi never pulls
in FastAPI or the server's storage libraries. docs/protocol.md is the human-readable
version of the same contract; the two must agree.
"""

from protocol.messages import (
    PROTOCOL_VERSION,
    BoardMessage,
    CallMessage,
    CounterAction,
    CounterCommand,
    CounterReply,
    CounterState,
    CounterStatus,
    ErrorCode,
    ErrorInfo,
    ErrorMessage,
    FaultReport,
    ServiceInfo,
    ServicesMessage,
    TicketInfo,
    TicketIssued,
    TicketRequest,
    TicketResponse,
)
from protocol.topics import Topics

__all__ = [
    "PROTOCOL_VERSION",
    "BoardMessage",
    "CallMessage",
    "CounterAction",
    "CounterCommand",
    "CounterReply",
    "CounterState",
    "CounterStatus",
    "ErrorCode",
    "ErrorInfo",
    "ErrorMessage",
    "FaultReport",
    "ServiceInfo",
    "ServicesMessage",
    "TicketInfo",
    "TicketIssued",
    "TicketRequest",
    "TicketResponse",
    "Topics",
]
