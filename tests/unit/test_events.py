"""Scheduled Events documents as IMDS gives them, read into events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from azwait.events import Event, parse_document, run_drain
from azwait.transient import Kind, Transient

PREEMPT = {
    "EventId": "602d9444-d2cd-49c7-8624-8643e7171297",
    "EventType": "Preempt",
    "ResourceType": "VirtualMachine",
    "Resources": ["vmss_vm1", "vmss_vm2"],
    "EventStatus": "Scheduled",
    "NotBefore": "Mon, 19 Sep 2016 18:29:47 GMT",
    "Description": "Virtual machine is being preempted.",
    "EventSource": "Platform",
    "DurationInSeconds": -1,
}


def test_a_document_reads_into_events() -> None:
    document = parse_document({"DocumentIncarnation": 3, "Events": [PREEMPT]})
    assert document.incarnation == 3 and document.unreadable == 0
    [event] = document.events
    assert event.id == PREEMPT["EventId"] and event.type == "Preempt"
    assert event.resources == ("vmss_vm1", "vmss_vm2")
    assert event.not_before == 1474309787.0  # 2016-09-19T18:29:47Z


def test_started_events_have_no_not_before() -> None:
    event = Event.from_json({**PREEMPT, "EventStatus": "Started", "NotBefore": ""})
    assert event is not None
    assert event.not_before is None and event.status == "Started"


def test_the_drain_gets_every_field_as_a_variable() -> None:
    event = Event.from_json(PREEMPT)
    assert event is not None
    env = event.environment()
    assert env == {
        "AZWAIT_EVENT_ID": PREEMPT["EventId"], "AZWAIT_EVENT_TYPE": "Preempt",
        "AZWAIT_EVENT_STATUS": "Scheduled", "AZWAIT_EVENT_RESOURCES": "vmss_vm1,vmss_vm2",
        "AZWAIT_EVENT_NOT_BEFORE": "Mon, 19 Sep 2016 18:29:47 GMT",
        "AZWAIT_EVENT_SOURCE": "Platform",
        "AZWAIT_EVENT_DESCRIPTION": "Virtual machine is being preempted.",
        "AZWAIT_EVENT_DURATION": "-1",
    }


@pytest.mark.parametrize("document", [None, [], {"DocumentIncarnation": 1}, {"Events": {}}])
def test_malformed_documents_are_transient(document: Any) -> None:
    with pytest.raises(Transient) as caught:
        parse_document(document)
    assert caught.value.kind is Kind.IMDS


@pytest.mark.parametrize("unreadable", [{"EventType": "Preempt"}, "Preempt", {**PREEMPT,
                                                                           "EventId": ""}])
def test_an_event_without_an_id_does_not_hide_the_others(unreadable: Any) -> None:
    document = parse_document({"DocumentIncarnation": 4, "Events": [unreadable, PREEMPT]})
    assert [event.id for event in document.events] == [PREEMPT["EventId"]]
    assert document.unreadable == 1


def test_an_unreadable_not_before_is_bounded_by_the_timeout_alone() -> None:
    event = Event.from_json({**PREEMPT, "NotBefore": "soon"})
    assert event is not None and event.not_before is None


def test_a_drain_with_no_time_left_is_not_started(tmp_path: Path) -> None:
    event = Event.from_json(PREEMPT)
    assert event is not None
    marker = tmp_path / "ran"
    done = run_drain(["/bin/sh", "-c", f"touch {marker}"], event, 0.0, {})
    assert done.problem == "no time left before the event's NotBefore"
    assert done.exit_code is None and not marker.exists()
