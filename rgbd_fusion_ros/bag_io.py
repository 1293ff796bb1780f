"""Camera frames out of a rosbag2 (sqlite3 or mcap) with ``rosbags``: topic checks, time order, stamp matching.

No ROS installation needed. The image topic drives: every image message read becomes one ``MatchedFrame``,
with the camera_info (and mask / depth, when those topics are given) whose header stamps are nearest to the
image's within a tolerance; a frame missing a partner carries a ``problem`` instead of being silently dropped.
Messages are read in log-time order; an image waits at most ``MATCH_WAIT_S`` of bag time for its partners.
"""

from __future__ import annotations

import functools
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
ACCEPTED_TYPES = {
    "image": (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE),
    "camera_info": (CAMERA_INFO_TYPE,),
    "mask": (IMAGE_TYPE,),
    "depth": (IMAGE_TYPE,),
}
PARTNER_ROLES = ("camera_info", "mask", "depth")
MATCH_WAIT_S = 1.0  # bag time an image waits for a partner that has not arrived yet
PARTNER_BUFFER = 512  # partner messages kept per topic while waiting (bounds memory on odd stamps)
NS = 1_000_000_000


@dataclass(frozen=True)
class FrameTopics:
    """The input topics: image (Image or CompressedImage) and camera_info required, mask and depth optional."""

    image: str
    camera_info: str
    mask: str | None = None
    depth: str | None = None

    def by_role(self) -> dict[str, str]:
        """role ("image", "camera_info", "mask", "depth") -> topic, for the topics given."""
        roles = {"image": self.image, "camera_info": self.camera_info, "mask": self.mask, "depth": self.depth}
        return {role: topic for role, topic in roles.items() if topic}


@dataclass
class MatchedFrame:
    """One image message with its partners (deserialised rosbags messages) or the reason it has none.

    log_time_ns: the image's bag timestamp. problem: None when every required partner was found.
    """

    log_time_ns: int
    image: Any
    camera_info: Any = None
    mask: Any = None
    depth: Any = None
    problem: str | None = None


@dataclass
class ReadStats:
    """What reading saw: images read and selected, undecodable messages per topic, and a fatal read error."""

    images_read: int = 0
    images_selected: int = 0
    corrupt_messages: Counter = field(default_factory=Counter)
    read_error: str | None = None


@functools.cache
def bag_typestore():
    """The rosbags typestore of ROS 2 kilted message types (one per process: it caches compiled serialisers)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def stamp_ns(header) -> int:
    """A std_msgs/Header stamp in integer nanoseconds."""
    return int(header.stamp.sec) * NS + int(header.stamp.nanosec)


def storage_files(path: str | Path) -> str:
    """The bag's storage file names (``x.mcap``, ``x_0.db3``), for messages about which file is damaged."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.glob("*") if p.suffix in (".mcap", ".db3"))
    return ", ".join(str(p) for p in files) or str(path)


def open_bag(path: str | Path):
    """An open ``rosbags.rosbag2.Reader``; unreadable bags raise ``RuntimeError`` naming the file and the cause."""
    from rosbags.rosbag2 import Reader, ReaderError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input bag {path} does not exist")
    if path.is_dir() and not (path / "metadata.yaml").exists():
        raise RuntimeError(
            f"cannot read bag {path}: it has no metadata.yaml (an interrupted recording? `ros2 bag reindex` "
            "rebuilds it; or not a rosbag2 folder)"
        )
    if path.is_dir():
        check_metadata(path / "metadata.yaml")
    try:
        reader = Reader(path)
        reader.open()
    except ReaderError as error:
        raise RuntimeError(
            f"cannot read bag {path}: {error} (is it a rosbag2 folder? a truncated or corrupt bag may need "
            "`ros2 bag reindex` or re-recording)"
        ) from None
    except Exception as error:  # noqa: BLE001 - a damaged file fails in the parser (UnicodeDecodeError, ...)
        raise RuntimeError(
            f"cannot read bag {path}: the storage file {storage_files(path)} is corrupt ({type(error).__name__}: "
            f"{error}); a truncated or corrupt bag may need `ros2 bag reindex` or re-recording"
        ) from None
    return reader


def check_metadata(metadata: Path) -> None:
    """A bag's metadata.yaml must be YAML holding a ``rosbag2_bagfile_information`` mapping; else RuntimeError
    naming the file and what is wrong (the reader itself fails there with a bare TypeError or KeyError)."""
    import yaml

    try:
        content = yaml.safe_load(metadata.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        problem = " ".join(str(error).split())
        raise RuntimeError(f"cannot read bag metadata {metadata}: not valid YAML ({problem})") from None
    if not isinstance(content, dict) or not isinstance(content.get("rosbag2_bagfile_information"), dict):
        raise RuntimeError(
            f"cannot read bag metadata {metadata}: expected a rosbag2_bagfile_information mapping, found "
            f"{'an empty file' if content is None else type(content).__name__} (`ros2 bag reindex` rebuilds it)"
        )


def describe_topics(reader) -> str:
    """One line per topic in the bag: name, type, message count."""
    return "\n".join(
        f"  {name}  [{info.msgtype}]  {info.msgcount} messages" for name, info in sorted(reader.topics.items())
    )


def resolve_connections(reader, topics: FrameTopics) -> dict[str, list]:
    """role -> the bag's connections of that role's topic; a missing topic or wrong type raises ``ValueError``."""
    by_role = {}
    for role, topic in topics.by_role().items():
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise ValueError(
                f"--{role.replace('_', '-')}-topic {topic} is not in {reader.path}; "
                f"the bag has:\n{describe_topics(reader)}"
            )
        for connection in connections:
            if connection.msgtype not in ACCEPTED_TYPES[role]:
                raise ValueError(
                    f"{role} topic {topic} has type {connection.msgtype}; expected {' or '.join(ACCEPTED_TYPES[role])}"
                )
        by_role[role] = connections
    return by_role


class StampMatcher:
    """First-in first-out stamp matching of images with partner messages (an offline, lossless synchroniser).

    A pending image is decided, in arrival order, once each partner role has a message with exactly its stamp,
    or a message stamped later than ``stamp + tolerance`` (nothing closer can follow, stamps rising per topic),
    or ``wait_ns`` of bag time has passed. The partner chosen is the one nearest in stamp within ``tolerance_ns``.
    """

    def __init__(self, roles: tuple[str, ...], tolerance_ns: int, wait_ns: int = int(MATCH_WAIT_S * NS)):
        self.roles = roles
        self.tolerance_ns = tolerance_ns
        self.wait_ns = wait_ns
        self.pending: deque[tuple[int, MatchedFrame]] = deque()  # (image stamp, frame being matched)
        self.partners = {role: deque(maxlen=PARTNER_BUFFER) for role in roles}  # (stamp, message)
        self.newest_stamp = {role: None for role in roles}

    def add_image(self, log_time_ns: int, image) -> None:
        self.pending.append((stamp_ns(image.header), MatchedFrame(log_time_ns, image)))

    def add_failed_image(self, log_time_ns: int, problem: str) -> None:
        """An image that could not be read: decided as soon as it is first in line, with ``problem``."""
        self.pending.append((0, MatchedFrame(log_time_ns, None, problem=problem)))

    def add_partner(self, role: str, message) -> None:
        stamp = stamp_ns(message.header)
        self.partners[role].append((stamp, message))
        newest = self.newest_stamp[role]
        self.newest_stamp[role] = stamp if newest is None else max(newest, stamp)

    def decided(self, now_ns: int) -> Iterator[MatchedFrame]:
        """The pending frames that can be decided at bag time ``now_ns``, oldest first."""
        while self.pending and self._can_decide(*self.pending[0], now_ns):
            yield self._decide()

    def drain(self) -> Iterator[MatchedFrame]:
        """Every pending frame, with what has arrived (end of the bag)."""
        while self.pending:
            yield self._decide()

    def _nearest(self, role: str, stamp: int):
        """(|stamp difference|, message) of the nearest partner within tolerance, or None."""
        best = None
        for partner_stamp, message in self.partners[role]:
            difference = abs(partner_stamp - stamp)
            if difference <= self.tolerance_ns and (best is None or difference < best[0]):
                best = (difference, message)
        return best

    def _can_decide(self, stamp: int, frame: MatchedFrame, now_ns: int) -> bool:
        if frame.problem or now_ns - frame.log_time_ns > self.wait_ns:
            return True
        for role in self.roles:
            nearest = self._nearest(role, stamp)
            newest = self.newest_stamp[role]
            if not (nearest and nearest[0] == 0) and not (newest is not None and newest > stamp + self.tolerance_ns):
                return False
        return True

    def _decide(self) -> MatchedFrame:
        stamp, frame = self.pending.popleft()
        if frame.problem:
            return frame
        missing = []
        for role in self.roles:
            nearest = self._nearest(role, stamp)
            if nearest is None:
                missing.append(role)
            else:
                setattr(frame, role, nearest[1])
            while self.partners[role] and self.partners[role][0][0] < stamp - self.tolerance_ns:
                self.partners[role].popleft()  # too old for this and every later image
        if missing:
            tolerance_ms = self.tolerance_ns / 1e6
            frame.problem = f"no {' / '.join(missing)} within {tolerance_ms:g} ms of the image stamp"
        return frame


def read_frames(
    reader,
    connections: dict[str, list],
    typestore,
    tolerance_s: float,
    start_ns: int | None = None,
    end_ns: int | None = None,
    every: int = 1,
    stats: ReadStats | None = None,
    on_message: Callable[[Any, int, bytes], None] | None = None,
) -> Iterator[MatchedFrame]:
    """Matched frames of the selected images in [start_ns, end_ns] (bag time), in time order.

    every: keep every N-th image read. on_message(connection, log_time_ns, raw) sees every raw message of the
    given connections inside the range (for copying). A message that cannot be deserialised is counted in
    ``stats.corrupt_messages`` (an image one also yields a frame with that problem); an error while reading the
    bag itself stops the iteration, is stored in ``stats.read_error``, and the frames matched so far are yielded.
    """
    stats = stats if stats is not None else ReadStats()
    role_of = {c.id: role for role, conns in connections.items() for c in conns}
    matcher = StampMatcher(tuple(r for r in PARTNER_ROLES if r in connections), int(tolerance_s * NS))
    wait_ns = matcher.wait_ns
    # Partners stamped just before the range may belong to its first images: read them too.
    read_start = None if start_ns is None else max(0, start_ns - wait_ns)
    all_connections = [c for conns in connections.values() for c in conns]
    messages = reader.messages(connections=all_connections, start=read_start, stop=end_ns)
    while True:
        try:
            connection, log_time_ns, raw = next(messages)
        except StopIteration:
            break
        except Exception as error:  # the bag itself is damaged: keep what was read
            stats.read_error = f"{storage_files(reader.path)} is corrupt ({type(error).__name__}: {error})"
            break
        in_range = start_ns is None or log_time_ns >= start_ns
        role = role_of[connection.id]
        if role == "image" and not in_range:
            continue
        if on_message is not None and in_range:
            on_message(connection, log_time_ns, raw)
        if role == "image":
            stats.images_read += 1
            if (stats.images_read - 1) % every:
                continue
            stats.images_selected += 1
        try:
            message = typestore.deserialize_cdr(raw, connection.msgtype)
        except Exception as error:  # any decoding failure of one message only affects that message
            stats.corrupt_messages[connection.topic] += 1
            if role == "image":
                matcher.add_failed_image(log_time_ns, f"image message cannot be decoded ({type(error).__name__})")
                yield from matcher.decided(log_time_ns)
            continue
        if role == "image":
            matcher.add_image(log_time_ns, message)
        else:
            matcher.add_partner(role, message)
        yield from matcher.decided(log_time_ns)
    yield from matcher.drain()
