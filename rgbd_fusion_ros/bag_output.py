"""Writing the output rosbag2 with ``rosbags``: metadata version 9, QoS profiles, messages in log-time order.

Messages arrive out of order (inference results come after the input messages copied meanwhile); they wait in
a heap and are written in log-time order up to a watermark, so every storage plugin and player sees a sorted
bag. No ROS installation needed.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from pathlib import Path

BAG_VERSION = 9
STORAGES = ("sqlite3", "mcap")
INFINITE_SEC, INFINITE_NSEC = 9223372036, 854775807  # how rosbag2 records an unset (infinite) QoS duration


def output_qos():
    """The QoS offered by the output publishers: reliable, volatile, keep last 10 (the ROS 2 default profile)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    infinite = QosTime(INFINITE_SEC, INFINITE_NSEC)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=10,
        reliability=QosReliability.RELIABLE,
        durability=QosDurability.VOLATILE,
        deadline=infinite,
        lifespan=infinite,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=infinite,
        avoid_ros_namespace_conventions=False,
    )


class OrderedBagWriter:
    """A rosbags ``Writer`` that writes queued messages sorted by log time. Use as a context manager.

    add_topic / copy_connection register output connections; push queues a serialised message; flush(upto_ns)
    writes every queued message stamped at or before ``upto_ns``; closing writes the rest and the metadata.
    """

    def __init__(self, path: Path, storage: str, typestore):
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
        plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
        self.writer = Writer(path, version=BAG_VERSION, storage_plugin=plugin)
        self.typestore = typestore
        self.queue: list[tuple[int, int, object, bytes]] = []  # (log time, arrival, connection, raw)
        self.arrival = itertools.count()
        self.copies: dict[int, object] = {}  # input connection id -> output connection
        self.written: Counter = Counter()  # topic -> messages written

    def __enter__(self) -> OrderedBagWriter:
        self.writer.__enter__()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            try:
                self.flush(None)
            except BaseException as error:
                self.writer.__exit__(type(error), error, error.__traceback__)
                raise
        self.writer.__exit__(exc_type, exc, traceback)  # closes (metadata) on success, aborts on error

    def add_topic(self, topic: str, msgtype: str):
        """A new output connection for messages built here, offering ``output_qos()``."""
        return self.writer.add_connection(topic, msgtype, typestore=self.typestore, offered_qos_profiles=[output_qos()])

    def copy_connection(self, connection) -> None:
        """Register an output twin of an input connection (same topic, type, definition, hash and QoS)."""
        for known_id, twin in self.copies.items():
            if twin.topic == connection.topic and twin.msgtype == connection.msgtype and twin.ext == connection.ext:
                self.copies[connection.id] = self.copies[known_id]
                return
        definition_known = bool(connection.msgdef.data and connection.digest.startswith("RIHS01_"))
        self.copies[connection.id] = self.writer.add_connection(
            connection.topic,
            connection.msgtype,
            typestore=None if definition_known else self.typestore,
            msgdef=connection.msgdef.data if definition_known else None,
            rihs01=connection.digest if definition_known else None,
            serialization_format=connection.ext.serialization_format,
            offered_qos_profiles=connection.ext.offered_qos_profiles,
        )

    def push(self, connection, log_time_ns: int, raw: bytes) -> None:
        """Queue one serialised message on an output connection."""
        heapq.heappush(self.queue, (log_time_ns, next(self.arrival), connection, raw))

    def push_copy(self, input_connection, log_time_ns: int, raw: bytes) -> None:
        """Queue a raw input message on the twin made by ``copy_connection``."""
        self.push(self.copies[input_connection.id], log_time_ns, raw)

    def flush(self, upto_ns: int | None) -> None:
        """Write queued messages with log time <= ``upto_ns`` (None = all), oldest first."""
        while self.queue and (upto_ns is None or self.queue[0][0] <= upto_ns):
            log_time_ns, _, connection, raw = heapq.heappop(self.queue)
            self.writer.write(connection, log_time_ns, raw)
            self.written[connection.topic] += 1
