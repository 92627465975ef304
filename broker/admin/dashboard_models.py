"""The answer of ``GET /api/dashboard`` (and each ``snapshot`` event of ``/api/events``):
pydantic models of ``broker.services.dashboard.Snapshot.as_json``."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["DashboardOut"]


class DashboardError(BaseModel):
    """A message on the error list, without any value it carried."""

    id: str = Field(description="the message's id in the log")
    type: str = Field(description="its message type (MSH-9), e.g. ORM^O01")
    location: str = Field(description="ERR-2: where the error is, e.g. PID-3")
    code: str = Field(description="ERR-3: the HL7 error code (table 0357)")
    ack_code: str = Field(description="MSA-1 of its ACK: AE or AR")
    received_at: float = Field(description="seconds since the epoch")


class DashboardMessages(BaseModel):
    per_minute: list[int] = Field(
        description="messages received in each minute of the last hour, oldest first (60)"
    )
    last_hour: int = Field(description="messages received in the last hour")
    acks: dict[str, int] = Field(description="ACK codes answered in the last hour: AA, AE, AR")
    errors: int = Field(description="messages on the error list now")
    warnings: int = Field(description="messages accepted with warnings, in the log now")
    total: int = Field(description="messages in the log now")
    recent_errors: list[DashboardError] = Field(description="the error list's newest, newest first")


class DashboardByStatus(BaseModel):
    open: int = Field(description="scheduled or in progress")
    ended: int = Field(description="completed, discontinued or canceled, not yet purged")


class DashboardStation(BaseModel):
    station: str = Field(description="a Scheduled Station AE Title")
    entries: int = Field(description="the worklist entries naming it")
    open: int | None = Field(
        description="of them, scheduled or in progress; null: not counted (see limit)"
    )
    ended: int | None = Field(
        description="of them, completed, discontinued or canceled and not yet purged; "
        "null: not counted, as its entries and the ended ones both number more than "
        "limit (or limit is null)"
    )


class DashboardAll(BaseModel):
    entries: int = Field(description="every worklist entry, whatever station it names")
    open: int
    ended: int


class DashboardStations(BaseModel):
    """The worklist's entries by station and state: one pass, counted at most a few
    seconds before and shared by every dashboard and the metrics."""

    counted_at: float = Field(description="when the pass counted them, seconds since the epoch")
    age_seconds: float = Field(description="how old the pass is at this snapshot's time")
    limit: int | None = Field(
        description="a station's open and ended entries are not counted when its entries "
        "and the ended ones both number more than this (the ids one count walks, holding "
        "Redis); null: this Redis cannot count them at all (before 6.2)"
    )
    rows: list[DashboardStation] = Field(description="one per station, by AE title")
    all: DashboardAll = Field(
        description="the whole worklist, from the same pass; not the rows' sum, as an "
        "entry may name no station or several"
    )


class DashboardWorklist(BaseModel):
    total: int = Field(description="worklist entries now")
    by_status: DashboardByStatus
    by_station: dict[str, int] = Field(description="entries by Scheduled Station AE Title now")
    stations: DashboardStations


class DashboardOut(BaseModel):
    """One snapshot of the dashboard's numbers."""

    time: float = Field(description="when it was taken, seconds since the epoch")
    messages: DashboardMessages
    worklist: DashboardWorklist
