"""An outgoing message's outbox payload: every field, copied, and read back the same."""

from __future__ import annotations

from dataclasses import fields

from handlers.messages import Button, Outgoing, outgoing_from_payload


def test_the_payload_has_every_field_as_a_copy_and_reads_back_the_same():
    message = Outgoing(
        chat_id="42", text="案件", buttons=[[Button("受理", "a:ac:JL-1")]], photos=["ab" * 32],
        reply_to_message_id="7", keyboard=[["📝 我要说事"]], case_number="JL-1",
        purpose="case_card", context={"role": "supervisor", "stage": ["acceptance"]},
    )  # fmt: skip
    payload = message.payload()
    assert set(payload) == {f.name for f in fields(Outgoing)}
    assert payload["buttons"] == [[{"text": "受理", "data": "a:ac:JL-1"}]]
    assert outgoing_from_payload(payload) == message
    # Changing the message afterwards leaves the row's payload as it was written.
    message.photos.append("cd" * 32)
    message.keyboard[0].append("x")
    assert message.context is not None
    message.context["stage"].append("x")
    assert payload["photos"] == ["ab" * 32] and payload["keyboard"] == [["📝 我要说事"]]
    assert payload["context"] == {"role": "supervisor", "stage": ["acceptance"]}
