"""Connectors without brokers: connector tables of flowhost.toml, broker trigger configs,
payload formats, delivery keys, reconnect backoff, in-order MQTT acks."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from flowhost.connectors.config import (
    backoff_delay,
    env_url_name,
    parse_connector,
    password_of,
    without_secrets,
)
from flowhost.connectors.manager import plans
from flowhost.connectors.messages import AmqpMessage, MqttMessage, PayloadError, decode_payload
from flowhost.connectors.mqtt import _InOrderAcks, subscriptions
from flowhost.connectors.trigger_config import parse_amqp, parse_mqtt
from flowhost.errors import ConfigurationError
from flowhost.settings import load_settings
from flowhost.triggers.declarations import TriggerSpec


def settings_with(tmp_path: Path, text: str, **environ: str) -> object:
    (tmp_path / "flowhost.toml").write_text(text)
    return load_settings(tmp_path, environ=environ)


def test_connectors_come_from_flowhost_toml_with_url_overrides(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path,
        """
concurrency = 4
[connectors.plant]
url = "mqtts://ops@broker.example"
password_env = "PLANT_PASSWORD"
protocol = "5"
session = "persistent"
[connectors.rabbit-main]
url = "amqp://flowhost@rabbit.example:5673/prod"
""",
        FLOWHOST_CONNECTOR_RABBIT_MAIN_URL="amqps://other@rabbit.internal/staging",
    )
    plant, rabbit = settings.connectors  # type: ignore[attr-defined]
    assert (plant.type, plant.host, plant.port, plant.tls) == ("mqtt", "broker.example", 8883, True)
    assert plant.username == "ops" and plant.password_env == "PLANT_PASSWORD"
    assert plant.protocol == "5" and plant.session == "persistent"
    assert (rabbit.name, rabbit.host, rabbit.port, rabbit.tls) == (
        "rabbit-main",
        "rabbit.internal",
        5671,
        True,
    )
    assert rabbit.username == "other" and rabbit.vhost == "staging"
    assert env_url_name("rabbit-main") == "FLOWHOST_CONNECTOR_RABBIT_MAIN_URL"
    assert (
        "PLANT_PASSWORD" in str(plant.to_json()) and plant.address == "mqtts://broker.example:8883"
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('url = "mqtt://u:secret@h"', "password_env"),
        ('url = "http://h"', "must start with"),
        ('url = "mqtt://h"\nprotocol = "4"', "protocol"),
        ('url = "mqtt://h"\nbogus = 1', "unknown key 'bogus'"),
        ('url = "amqp://h"\nbackoff_initial = 0', "positive"),
        ('url = "amqp://h"\npassword_env = "not a name"', "password_env"),
        ("protocol = '5'", "url is required"),
    ],
)
def test_bad_connector_tables_name_the_problem(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        settings_with(tmp_path, f"[connectors.c]\n{table}\n")
    assert "secret" not in str(caught.value)


def test_a_password_comes_from_its_variable_and_a_missing_one_names_it(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, '[connectors.c]\nurl = "mqtt://h"\npassword_env = "PW"\n')
    [config] = settings.connectors  # type: ignore[attr-defined]
    assert password_of(config, {"PW": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigurationError, match="PW") as caught:
        password_of(config, {})
    assert "s3cret" not in str(caught.value)


def test_broker_trigger_configs_are_checked_field_by_field() -> None:
    good = TriggerSpec("t", "mqtt", {"connector": "c", "topics": "a/+/b", "qos": 2})
    assert good.problems() == []
    problems = TriggerSpec(
        "t",
        "mqtt",
        {"connector": "c", "topics": ["a/#/b"], "qos": 3, "payload": "xml", "extra": 1},
    ).problems()
    assert sorted(p.pointer for p in problems) == [
        "/config/extra",
        "/config/payload",
        "/config/qos",
        "/config/topics/0",
    ]
    problems = TriggerSpec(
        "t",
        "amqp",
        {"queue": "amq.x", "exchange_type": "headers", "prefetch": 0, "max_failures": "3"},
    ).problems()
    assert sorted(p.pointer for p in problems) == [
        "/config/connector",
        "/config/exchange_type",
        "/config/max_failures",
        "/config/prefetch",
        "/config/queue",
    ]


def test_payload_formats() -> None:
    assert decode_payload(b'{"a": 1}', "json") == {"a": 1}
    assert decode_payload("é".encode(), "text") == "é"
    assert decode_payload(b"\xff\x00", "bytes") == "/wA="
    with pytest.raises(PayloadError, match="not JSON"):
        decode_payload(b"{nope", "json")
    with pytest.raises(PayloadError, match="not UTF-8"):
        decode_payload(b"\xff", "text")


def test_delivery_keys_use_ids_when_there_are_and_hashes_with_a_window_otherwise() -> None:
    trigger = parse_mqtt("t", {"connector": "c", "topics": "a/#", "id_property": "id"})
    plain = MqttMessage("a/b", b"x", 1, False)
    with_id = MqttMessage("a/b", b"x", 1, False, {"user_properties": [["id", "m-7"]]})
    other_topic = MqttMessage("a/c", b"x", 1, False)
    key = plain.delivery_key(trigger)
    assert key is not None and key.window == 600 and key.key.startswith("mqtt:sha256:")
    assert with_id.delivery_key(trigger) == type(key)("mqtt:id:m-7", None)
    assert other_topic.delivery_key(trigger) != key
    off = parse_mqtt("t", {"connector": "c", "topics": "a/#", "dedupe_window": 0})
    assert plain.delivery_key(off) is None
    queue = parse_amqp("q", {"connector": "c", "queue": "q"})
    keyed = AmqpMessage("q", "ex", "rk", b"x", message_id="m" * 300)
    long_key = keyed.delivery_key(queue)
    assert long_key is not None and long_key.window is None and len(long_key.key) < 100
    hashed = AmqpMessage("q", "ex", "rk", b"x").delivery_key(queue)
    assert hashed is not None and hashed.window == 600


def test_backoff_grows_to_its_cap_with_full_jitter() -> None:
    rng = random.Random(7)
    delays = [[backoff_delay(a, 0.5, 30, rng.random()) for _ in range(200)] for a in (1, 4, 20)]
    assert all(0.05 <= d <= 0.5 for d in delays[0])
    assert all(0.05 <= d <= 4.0 for d in delays[1]) and max(delays[1]) > 2.0
    assert all(d <= 30 for d in delays[2]) and max(delays[2]) > 20 and min(delays[2]) < 10


def test_mqtt_acks_go_out_in_arrival_order() -> None:
    sent: list[int] = []
    acks = _InOrderAcks(lambda mid, qos: sent.append(mid))
    first, second, third = (acks.received(mid, 1) for mid in (10, 11, 12))
    zero = acks.received(13, 0)
    acks.done(third)
    acks.done(second)
    assert sent == []
    acks.done(first)
    assert sent == [10, 11, 12]
    acks.done(zero)
    assert sent == [10, 11, 12]  # QoS 0 has no ack


def test_plans_group_triggers_by_connector_and_report_unknown_ones(tmp_path: Path) -> None:
    settings = settings_with(
        tmp_path, '[connectors.m]\nurl = "mqtt://h"\n[connectors.a]\nurl = "amqp://h"\n'
    )
    rows = [
        {"name": "t1", "type": "mqtt", "config": {"connector": "m", "topics": "a/#", "qos": 0}},
        {"name": "t2", "type": "mqtt", "config": {"connector": "m", "topics": ["a/#", "b"]}},
        {"name": "t3", "type": "mqtt", "config": {"connector": "a", "topics": "x"}},
        {"name": "t4", "type": "amqp", "config": {"connector": "nowhere", "queue": "q"}},
    ]
    found, problems = plans(settings.connectors, rows)  # type: ignore[attr-defined]
    assert list(found) == ["m"] and found["m"].names == ("t1", "t2")
    assert subscriptions(found["m"].triggers) == {"a/#": 1, "b": 1}  # type: ignore[arg-type]
    assert len(problems) == 2 and "no connector 'nowhere'" in problems[1]


def test_errors_kept_for_the_state_hold_no_password() -> None:
    config = parse_connector(
        "rabbit", {"url": "amqp://me@h/", "password_env": "RABBIT_PASSWORD"}, "flowhost.toml"
    )
    environ = {"RABBIT_PASSWORD": "pa55-word"}
    text = "refused amqp://me:pa55-word@h:5672/ (login me / pa55-word)"
    assert (
        without_secrets(text, config, environ) == "refused amqp://me:***@h:5672/ (login me / ***)"
    )
    assert without_secrets("no password here", config, {}) == "no password here"
