"""MQTT triggers against a real mosquitto: messages in → runs with topic, payload, QoS, retain
and properties as input; a redelivered message starts nothing; a payload that is not JSON is
rejected with its reason; a broker that goes away is reconnected to with backoff, visible in
the connector's state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowhost.store import triggers as trigger_store
from tests.support.brokers import Mosquitto
from tests.support.connectors import (
    broker_project,
    inputs_of,
    publish_mqtt,
    wait_for_inputs,
    wait_for_state,
    wait_until,
)
from tests.support.engine import running_host


def sensors_project(tmp_path: Path, broker: Mosquitto, **config: object) -> Path:
    return broker_project(
        tmp_path,
        {"plant": {"url": broker.url, "protocol": "5", "backoff_initial": 0.2, "backoff_max": 1}},
        {
            "temperatures": (
                "mqtt",
                {"connector": "plant", "topics": ["sensors/+/temp"], "qos": 1, **config},
            )
        },
    )


async def test_messages_start_runs_with_the_message_as_input(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto
) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    async with running_host(sensors_project(tmp_path, mosquitto), database_url) as project:
        await wait_for_state(project.database, "plant", "connected")
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = ("site", "north")
        properties.ContentType = "application/json"
        await publish_mqtt(
            mosquitto.port,
            [("sensors/a/temp", b'{"c": 21.5}'), ("sensors/b/temp", b'{"c": 19}')],
            version5=True,
            properties=properties,
        )
        await publish_mqtt(mosquitto.port, [("sensors/a/humidity", b"{}")])  # no trigger
        inputs = await wait_for_inputs(project.database, "inbox", 2)
        async with project.database.connection() as conn:
            fired = await trigger_store.trigger_events(
                conn, "temperatures", types=["trigger.fired"]
            )
    by_topic = {i["topic"]: i for i in inputs}
    assert sorted(by_topic) == ["sensors/a/temp", "sensors/b/temp"]
    first = by_topic["sensors/a/temp"]
    assert first["payload"] == {"c": 21.5}
    assert first["qos"] == 1 and first["retain"] is False and first["connector"] == "plant"
    assert first["properties"]["user_properties"] == [["site", "north"]]
    assert first["properties"]["content_type"] == "application/json"
    assert [e.data["source"] for e in fired] == ["mqtt", "mqtt"]
    assert all(e.data["delivery_key"].startswith("mqtt:sha256:") for e in fired)


async def test_an_identical_message_within_the_window_starts_nothing_and_an_id_property_wins(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto
) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    project_dir = sensors_project(tmp_path, mosquitto, id_property="msg-id")
    async with running_host(project_dir, database_url) as project:
        await wait_for_state(project.database, "plant", "connected")
        same = [("sensors/a/temp", b'{"c": 1}')] * 3
        await publish_mqtt(mosquitto.port, same, version5=True)
        for message_id in ("m-1", "m-2", "m-1"):
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = ("msg-id", message_id)
            await publish_mqtt(
                mosquitto.port,
                [("sensors/a/temp", b'{"c": 2}')],
                version5=True,
                properties=properties,
            )
        await publish_mqtt(mosquitto.port, [("sensors/z/temp", b'{"last": true}')])
        inputs = await wait_for_inputs(project.database, "inbox", 4)
        inputs = await inputs_of(project.database, "inbox")
    payloads = sorted(json.dumps(i["payload"], sort_keys=True) for i in inputs)
    # 3 identical → 1; ids m-1, m-2, m-1 → 2; the last one → 1.
    assert payloads == ['{"c": 1}', '{"c": 2}', '{"c": 2}', '{"last": true}']


async def test_qos_2_and_qos_0_messages(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto
) -> None:
    async with running_host(sensors_project(tmp_path, mosquitto, qos=2), database_url) as project:
        await wait_for_state(project.database, "plant", "connected")
        await publish_mqtt(mosquitto.port, [("sensors/a/temp", b'{"q": 2}')], qos=2)
        await publish_mqtt(mosquitto.port, [("sensors/a/temp", b'{"q": 0}')], qos=0)
        inputs = await wait_for_inputs(project.database, "inbox", 2)
    assert sorted((i["payload"]["q"], i["qos"]) for i in inputs) == [(0, 0), (2, 2)]


@pytest.mark.parametrize("payload_format", ["text", "bytes"])
async def test_text_and_bytes_payloads(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto, payload_format: str
) -> None:
    project_dir = sensors_project(tmp_path, mosquitto, payload=payload_format)
    async with running_host(project_dir, database_url) as project:
        await wait_for_state(project.database, "plant", "connected")
        await publish_mqtt(mosquitto.port, [("sensors/a/temp", b"21.5 \xc2\xb0C")])
        [data] = await wait_for_inputs(project.database, "inbox", 1)
    if payload_format == "text":
        assert data["payload"] == "21.5 °C" and "encoding" not in data
    else:
        assert data["payload"] == "MjEuNSDCsEM=" and data["encoding"] == "base64"


async def test_a_payload_that_is_not_json_is_rejected_with_its_reason(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto
) -> None:
    async with running_host(sensors_project(tmp_path, mosquitto), database_url) as project:
        await wait_for_state(project.database, "plant", "connected")
        await publish_mqtt(
            mosquitto.port, [("sensors/a/temp", b"{not json"), ("sensors/b/temp", b"[1]")]
        )
        await wait_for_inputs(project.database, "inbox", 1)

        async def rejected() -> list[trigger_store.TriggerEvent]:
            async with project.database.connection() as conn:
                return await trigger_store.trigger_events(
                    conn, "temperatures", types=["trigger.rejected"]
                )

        [event] = await wait_until(rejected, what="the rejection")
        inputs = await inputs_of(project.database, "inbox")
    assert [i["payload"] for i in inputs] == [[1]]
    assert event.data["reason"].startswith("the payload is not JSON")
    assert event.data["payload_preview"] == "{not json"
    assert event.data["message"]["topic"] == "sensors/a/temp"
    assert event.data["dead_lettered"] is False


async def test_a_broker_that_is_down_is_retried_with_backoff_visible_in_the_state(
    tmp_path: Path, database_url: str
) -> None:
    broker = Mosquitto(tmp_path / "broker")
    project_dir = sensors_project(tmp_path / "project", broker)
    async with running_host(project_dir, database_url) as project:
        state = await wait_for_state(project.database, "plant", "backing_off")
        assert state.attempt >= 1 and state.next_attempt_at is not None
        assert state.last_error is not None and "refused" in state.last_error.lower()
        assert state.address == broker.url and state.host_alive
        later = await wait_until(
            lambda: _attempt_at_least(project.database, 3), what="a third attempt"
        )
        assert later.next_attempt_at is not None
        assert _gauge("plant", "backing_off") == 1 and _gauge("plant", "connected") == 0
        broker.start()
        try:
            await wait_for_state(project.database, "plant", "connected")
            assert _gauge("plant", "connected") == 1 and _gauge("plant", "backing_off") == 0
            await publish_mqtt(broker.port, [("sensors/a/temp", b"1")])
            await wait_for_inputs(project.database, "inbox", 1)
        finally:
            broker.stop()


def _gauge(connector: str, state: str) -> float | None:
    from flowhost import metrics

    return metrics.REGISTRY.get_sample_value(
        "flowhost_connector_state", {"connector": connector, "role": "consume", "state": state}
    )


async def _attempt_at_least(database: object, attempt: int) -> object:
    from tests.support.connectors import states

    rows = await states(database, "plant")  # type: ignore[arg-type]
    return next((s for s in rows if s.attempt >= attempt), None)


async def test_tls_and_a_password_from_the_environment(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.brokers import certificates

    ca, cert, key = certificates(tmp_path / "tls")
    broker = Mosquitto(tmp_path / "broker", users={"plant": "right-horse"}, tls=(ca, cert, key))
    broker.start()
    connector = {
        "url": broker.url.replace("://", "://plant@"),
        "password_env": "TEST_PLANT_PASSWORD",
        "ca_file": str(ca),
        "protocol": "5",
        "backoff_initial": 0.2,
        "backoff_max": 1,
    }
    trigger = {"connector": "plant", "topics": ["sensors/#"]}
    project_dir = broker_project(
        tmp_path / "p", {"plant": connector}, {"temperatures": ("mqtt", trigger)}
    )
    try:
        monkeypatch.setenv("TEST_PLANT_PASSWORD", "wrong-battery")
        async with running_host(project_dir, database_url) as project:
            refused = await wait_for_state(project.database, "plant", "backing_off")
        monkeypatch.setenv("TEST_PLANT_PASSWORD", "right-horse")
        async with running_host(project_dir, database_url) as project:
            await wait_for_state(project.database, "plant", "connected")
            import ssl

            import aiomqtt

            context = ssl.create_default_context(cafile=str(ca))
            async with aiomqtt.Client(
                "127.0.0.1",
                broker.port,
                username="plant",
                password="right-horse",
                tls_context=context,
            ) as publisher:
                await publisher.publish("sensors/a", b'{"c": 3}', qos=1)
            [data] = await wait_for_inputs(project.database, "inbox", 1)
    finally:
        broker.stop()
    assert data["payload"] == {"c": 3}
    assert refused.last_error is not None and "wrong-battery" not in refused.last_error
    assert refused.address.startswith("mqtts://127.0.0.1:")
