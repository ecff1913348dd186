"""Reference (a), the client ceiling: a plain paho-mqtt subscriber that only counts.

`python -m benchmarks.paho_count --port P --client-id ID --expect N` prints `ready` once it is
loaded, connects as soon as the broker answers, and prints `done <monotonic time>` when N
messages have arrived; then it keeps acknowledging until the benchmark terminates it.
"""

from __future__ import annotations

import time
from typing import Any

import paho.mqtt.client as mqtt

from benchmarks.pahoclient import (
    TOPIC_FILTERS,
    arguments,
    connect_when_up,
    create_session,
    persistent_client,
    say,
)


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--expect", type=int, default=0, help="messages to count")
    args = parser.parse_args()
    client = persistent_client(args.client_id)
    if args.create_session:
        create_session(client, args.host, args.port)
        return
    received = 0

    def on_message(_client: mqtt.Client, _userdata: Any, _message: mqtt.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received == args.expect:
            say(f"done {time.monotonic()}")

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(TOPIC_FILTERS)
    say("ready")
    connect_when_up(client, args.host, args.port)
    client.loop_forever()


if __name__ == "__main__":
    main()
