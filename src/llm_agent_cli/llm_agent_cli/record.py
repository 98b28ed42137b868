"""`llm-agent record`: write the agent's topics to an MCAP file that `ros2 bag` and Foxglove open.

The recorder subscribes raw (serialized CDR, no decoding) to the agent's topics under one
namespace and writes each message as rosbag2 does: profile `ros2`, schema encoding `ros2msg`
(the type's .msg text followed by every nested type's, separated by a line of 80 `=` and
`MSG: pkg/Type`), message encoding `cdr`, channel topic = the fully qualified topic name.
Log time is the receive time (ns, wall clock); publish time is the header stamp when the type
starts with a `std_msgs/Header`, else the receive time.

The camera's video stream (`camera/image_raw/ffmpeg`, ffmpeg_image_transport's FFMPEGPacket) is
recorded as it comes and, beside it, as `camera/image_raw/video`: foxglove_msgs/msg/CompressedVideo
with its schema text in the file, which Foxglove plays. Subscribing starts the image
compressor's encoder (it encodes only while someone reads).
"""
from __future__ import annotations

import argparse
import os
import re
import struct
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

# (relative topic, type, QoS kind): 'sensor' = qos_profile_sensor_data (best effort, accepts any
# publisher), 'reliable' = reliable volatile depth 50, 'latched' = reliable transient local.
AGENT_TOPICS: Tuple[Tuple[str, str, str], ...] = (
    ('camera/image_raw/compressed', 'sensor_msgs/msg/CompressedImage', 'sensor'),
    ('camera/depth/image_raw/compressedDepth', 'sensor_msgs/msg/CompressedImage', 'sensor'),
    ('scan/compressed', 'llm_agent_interfaces/msg/CompressedScan', 'sensor'),
    ('scan/filtered', 'sensor_msgs/msg/LaserScan', 'sensor'),
    ('odom', 'nav_msgs/msg/Odometry', 'sensor'),
    ('agent/observation', 'llm_agent_interfaces/msg/Observation', 'reliable'),
    ('agent/decision', 'llm_agent_interfaces/msg/Decision', 'reliable'),
    ('agent/instruction', 'std_msgs/msg/String', 'reliable'),
    ('cmd_vel', 'geometry_msgs/msg/Twist', 'reliable'),
    ('sim/events', 'std_msgs/msg/String', 'reliable'),
    ('goal_pose', 'geometry_msgs/msg/PoseStamped', 'latched'),
)

VIDEO_TOPIC = 'camera/image_raw/ffmpeg'
VIDEO_PACKET_TYPE = 'ffmpeg_image_transport_msgs/msg/FFMPEGPacket'
VIDEO_CHANNEL = 'camera/image_raw/video'     # foxglove_msgs/msg/CompressedVideo, for Foxglove

_PRIMITIVES = frozenset((
    'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32',
    'uint32', 'int64', 'uint64', 'string', 'wstring'))
_ALIASES = {'time': ('builtin_interfaces', 'Time'), 'duration': ('builtin_interfaces', 'Duration'),
            'Header': ('std_msgs', 'Header')}
_SEPARATOR = '=' * 80
_TYPE_RE = re.compile(r'^([^\[\s]+?)(<=\d+)?(\[[^\]]*\])?$')


class SchemaError(RuntimeError):
    """A message definition could not be found or understood."""


# ---------------------------------------------------------------------------- schema text
def _split_name(type_name: str) -> Tuple[str, str]:
    """'pkg/msg/Type' or 'pkg/Type' -> ('pkg', 'Type')."""
    parts = type_name.split('/')
    if len(parts) == 3 and parts[1] == 'msg' or len(parts) == 2:
        return parts[0], parts[-1]
    raise SchemaError(f'not a message type name: {type_name!r}')


def _msg_file(pkg: str, name: str) -> str:
    from ament_index_python.packages import (
        PackageNotFoundError,
        get_package_share_directory,
    )
    try:
        share = get_package_share_directory(pkg)
    except PackageNotFoundError as exc:
        raise SchemaError(f'package {pkg} is not installed (needed for {pkg}/{name})') from exc
    path = os.path.join(share, 'msg', f'{name}.msg')
    if not os.path.isfile(path):
        raise SchemaError(f'no message definition {path}')
    return path


def _strip_comment(line: str) -> str:
    """Drop a `#` comment that is not inside a quoted default value."""
    quote = ''
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ''
        elif ch in '"\'':
            quote = ch
        elif ch == '#':
            return line[:i].rstrip()
    return line.rstrip()


def _resolve(base: str, pkg: str) -> Optional[Tuple[str, str]]:
    """A field's base type -> (pkg, Type) of a message, or None for a primitive."""
    if base in _PRIMITIVES:
        return None
    if base in _ALIASES:
        return _ALIASES[base]
    if '/' in base:
        return _split_name(base)
    return pkg, base


def _definition(pkg: str, name: str) -> Tuple[str, List[Tuple[str, str]], bool]:
    """(cleaned .msg text with qualified type names, nested message types, starts with a Header)."""
    with open(_msg_file(pkg, name), encoding='utf-8') as f:
        raw = f.read().splitlines()
    lines: List[str] = []
    deps: List[Tuple[str, str]] = []
    first_field: Optional[Tuple[str, str]] = ()  # () = no field seen yet
    for line in raw:
        line = _strip_comment(line).strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            raise SchemaError(f'{pkg}/{name}: cannot parse line {line!r}')
        m = _TYPE_RE.match(parts[0])
        if not m:
            raise SchemaError(f'{pkg}/{name}: bad field type {parts[0]!r}')
        base, bound, array = m.group(1), m.group(2) or '', m.group(3) or ''
        target = _resolve(base, pkg)
        is_constant = re.match(r'^\w+\s*=', parts[1]) is not None
        if first_field == () and not is_constant:
            first_field = target
        if target is not None:
            if target not in deps:
                deps.append(target)
            line = f'{target[0]}/{target[1]}{bound}{array} {parts[1]}'
        lines.append(line)
    return '\n'.join(lines) + '\n', deps, first_field == ('std_msgs', 'Header')


_schema_cache: Dict[str, Tuple[str, bool]] = {}
_schema_lock = threading.Lock()


def schema_text(type_name: str) -> str:
    """The rosbag2 `ros2msg` schema of a message type ('pkg/msg/Type'): its definition, then
    each nested type's (depth first, each once) after a line of 80 '=' and 'MSG: pkg/Type'."""
    return _schema(type_name)[0]


def has_header(type_name: str) -> bool:
    """Whether the type's first field is a std_msgs/Header (its stamp opens the CDR payload)."""
    return _schema(type_name)[1]


def _schema(type_name: str) -> Tuple[str, bool]:
    with _schema_lock:
        if type_name in _schema_cache:
            return _schema_cache[type_name]
    pkg, name = _split_name(type_name)
    main, deps, header = _definition(pkg, name)
    parts = [main]
    seen = {(pkg, name)}
    stack = list(reversed(deps))
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        text, sub, _ = _definition(*dep)
        parts.append(f'{_SEPARATOR}\nMSG: {dep[0]}/{dep[1]}\n{text}')
        stack.extend(reversed([d for d in sub if d not in seen]))
    result = (''.join(parts), header)
    with _schema_lock:
        _schema_cache[type_name] = result
    return result


def header_stamp_ns(cdr: bytes) -> Optional[int]:
    """The header stamp of a CDR message whose first field is a std_msgs/Header, in ns."""
    if len(cdr) < 12:
        return None
    endian = '<' if cdr[1] & 1 else '>'   # encapsulation kind: CDR_LE = 0x0001, CDR_BE = 0x0000
    sec, nsec = struct.unpack_from(endian + 'iI', cdr, 4)
    return sec * 1_000_000_000 + nsec


def message_class(type_name: str) -> type:
    """The Python class of 'pkg/msg/Type' (for the subscription's type; data stays serialized)."""
    import importlib
    pkg, name = _split_name(type_name)
    return getattr(importlib.import_module(f'{pkg}.msg'), name)


# ---------------------------------------------------------------------------- QoS metadata
def _qos_yaml(kind: str) -> str:
    """`offered_qos_profiles` metadata in rosbag2's YAML (integer rmw enums, infinite durations)."""
    reliability = 2 if kind == 'sensor' else 1          # BEST_EFFORT = 2, RELIABLE = 1
    durability = 1 if kind == 'latched' else 2          # TRANSIENT_LOCAL = 1, VOLATILE = 2
    depth = 5 if kind == 'sensor' else (1 if kind == 'latched' else 50)
    inf = '\n    sec: 2147483647\n    nsec: 4294967295'
    return (f'- history: 1\n  depth: {depth}\n  reliability: {reliability}\n'
            f'  durability: {durability}\n  deadline:{inf}\n  lifespan:{inf}\n  liveliness: 1\n'
            f'  liveliness_lease_duration:{inf}\n  avoid_ros_namespace_conventions: false')


# ---------------------------------------------------------------------------- the file
class McapSink:
    """A thread-safe MCAP writer of serialized ROS 2 messages (schemas and channels on first use)."""

    def __init__(self, path: str, library: str = 'llm_agent_cli.record'):
        from mcap.writer import CompressionType, Writer
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._file = open(path, 'wb')
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._writer.start(profile='ros2', library=library)
        self._schemas: Dict[str, int] = {}
        self._channels: Dict[str, int] = {}
        self._sequence: Dict[int, int] = {}
        self.closed = False
        self.messages = 0
        self.bytes = 0

    def add_channel(self, topic: str, type_name: str, qos_kind: str = 'reliable',
                    schema: Optional[str] = None) -> int:
        """Register (once) the channel of a fully qualified topic and its type's schema (the
        installed .msg files', or `schema` for a type this machine does not have)."""
        with self._lock:
            if topic in self._channels:
                return self._channels[topic]
            if self.closed:
                raise ValueError('the recording is closed')
            schema_id = self._schemas.get(type_name)
            if schema_id is None:
                schema_id = self._writer.register_schema(
                    name=type_name, encoding='ros2msg',
                    data=(schema if schema is not None else schema_text(type_name)).encode())
                self._schemas[type_name] = schema_id
            channel_id = self._writer.register_channel(
                topic=topic, message_encoding='cdr', schema_id=schema_id,
                metadata={'offered_qos_profiles': _qos_yaml(qos_kind)})
            self._channels[topic] = channel_id
            self._sequence[channel_id] = 0
            return channel_id

    def write(self, channel_id: int, data: bytes, log_time_ns: int,
              publish_time_ns: Optional[int] = None) -> bool:
        """Append one serialized message; False once the file is closed."""
        with self._lock:
            if self.closed:
                return False
            seq = self._sequence[channel_id]
            self._sequence[channel_id] = seq + 1
            self._writer.add_message(channel_id=channel_id, log_time=log_time_ns, data=data,
                                     publish_time=log_time_ns if publish_time_ns is None
                                     else publish_time_ns, sequence=seq)
            self.messages += 1
            self.bytes += len(data)
            return True

    def close(self) -> None:
        """Write the summary and footer and close the file; idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                self._writer.finish()
            finally:
                self._file.close()


# ---------------------------------------------------------------------------- the node
class Recorder:
    """An rclpy node in its own Context that records the agent's topics under `namespace`."""

    def __init__(self, path: str, namespace: str = '', topics: Sequence[Tuple[str, str, str]] =
                 AGENT_TOPICS, node_name: str = 'agent_recorder', domain_id: Optional[int] = None,
                 video: bool = True):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import (
            DurabilityPolicy,
            QoSProfile,
            ReliabilityPolicy,
            qos_profile_sensor_data,
        )

        for _, type_name, _ in topics:
            schema_text(type_name)   # fail now, before any file or node exists
        self.sink = McapSink(path)
        self.path = path
        self.counts: Dict[str, int] = {}
        self._counts_lock = threading.Lock()
        self.context = Context()
        if domain_id is None:
            rclpy.init(context=self.context)
        else:
            rclpy.init(context=self.context, domain_id=domain_id)
        try:
            self.node = rclpy.create_node(node_name, namespace=namespace or '',
                                          context=self.context)
            qos = {
                'sensor': qos_profile_sensor_data,
                'reliable': QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE),
                'latched': QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                      durability=DurabilityPolicy.TRANSIENT_LOCAL),
            }
            self.topics: Dict[str, str] = {}     # fully qualified topic -> type
            for topic, type_name, kind in topics:
                sub = self.node.create_subscription(message_class(type_name), topic,
                                                    lambda m: None, qos[kind], raw=True)
                full = sub.topic_name
                channel = self.sink.add_channel(full, type_name, kind)
                sub.callback = self._callback(full, channel, has_header(type_name))
                self.topics[full] = type_name
                self.counts[full] = 0
            self.video_note = self._add_video(qos['sensor']) if video else 'video not asked for'
            # One thread: each callback is a file write (rclpy 7.1.6's MultiThreadedExecutor
            # made the recorder ~30x slower, see LeanMultiThreadedExecutor).
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
        except BaseException:
            self.sink.close()
            rclpy.try_shutdown(context=self.context)
            raise
        self._thread = threading.Thread(target=self._spin, name='agent_recorder', daemon=True)
        self._thread.start()

    def _callback(self, topic: str, channel: int, stamped: bool):
        def on_message(data: bytes) -> None:
            now = time.time_ns()
            pub = header_stamp_ns(data) if stamped else None
            if self.sink.write(channel, data, now, pub if pub and pub > 0 else None):
                with self._counts_lock:
                    self.counts[topic] += 1
        return on_message

    def _add_video(self, qos) -> str:
        """Record the video stream raw and as Foxglove's CompressedVideo; '' or why not."""
        try:
            packet_cls = message_class(VIDEO_PACKET_TYPE)
            schema_text(VIDEO_PACKET_TYPE)
        except (ImportError, SchemaError) as exc:
            return f'video not recorded: ffmpeg_image_transport_msgs is not installed ({exc})'
        from llm_agent_perception.video_codec import KEY_FLAG

        from llm_agent_perception import foxglove_video
        sub = self.node.create_subscription(packet_cls, VIDEO_TOPIC, lambda m: None, qos, raw=True)
        full = sub.topic_name
        raw_channel = self.sink.add_channel(full, VIDEO_PACKET_TYPE, 'sensor')
        video_full = full[:-len(VIDEO_TOPIC)] + VIDEO_CHANNEL
        video_channel = self.sink.add_channel(video_full, foxglove_video.TYPE_NAME, 'sensor',
                                              schema=foxglove_video.SCHEMA)
        write_raw = self._callback(full, raw_channel, True)
        self.topics[full] = VIDEO_PACKET_TYPE
        self.topics[video_full] = foxglove_video.TYPE_NAME
        self.counts[video_full] = self.counts[full] = 0

        started = [False]   # Foxglove's channel starts at a keyframe, as a decoder needs

        def on_packet(data: bytes) -> None:
            from rclpy.serialization import deserialize_message
            write_raw(data)
            msg = deserialize_message(data, packet_cls)
            started[0] = started[0] or bool(msg.flags & KEY_FLAG)
            if not started[0]:
                return
            try:
                fmt = foxglove_video.foxglove_format(msg.encoding)
            except ValueError:
                return      # a codec Foxglove does not play: the raw packet is recorded
            stamp = msg.header.stamp
            cdr = foxglove_video.compressed_video_cdr(stamp.sec, stamp.nanosec,
                                                      msg.header.frame_id, msg.data, fmt)
            pub = stamp.sec * 1_000_000_000 + stamp.nanosec
            if self.sink.write(video_channel, cdr, time.time_ns(), pub if pub > 0 else None):
                with self._counts_lock:
                    self.counts[video_full] += 1
        sub.callback = on_packet
        return ''

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def count(self, relative_or_full: str) -> int:
        """Messages recorded on a topic (fully qualified, or relative to the namespace)."""
        with self._counts_lock:
            if relative_or_full in self.counts:
                return self.counts[relative_or_full]
            return sum(n for t, n in self.counts.items()
                       if t.endswith('/' + relative_or_full.lstrip('/')))

    @property
    def total(self) -> int:
        with self._counts_lock:
            return sum(self.counts.values())

    def close(self) -> None:
        """Stop receiving, finish the file, shut the context down; idempotent."""
        import rclpy
        if self.sink.closed:
            return
        self.sink.close()      # later callbacks find the sink closed and drop their message
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> 'Recorder':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_record(args: argparse.Namespace) -> int:
    """Record until --duration seconds pass or Ctrl-C / SIGTERM; exit 0 with the file complete."""
    import signal
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    recorder: Optional[Recorder] = None
    try:
        try:
            recorder = Recorder(args.out, args.namespace, video=not args.no_video)
        except (SchemaError, OSError) as exc:
            print(f'llm-agent record: {exc}', file=sys.stderr)
            return 2
        print(f'[record] writing {len(recorder.topics)} topics to {args.out} '
              f'({"for %.1f s" % args.duration if args.duration else "Ctrl-C stops"})', flush=True)
        if recorder.video_note:
            print(f'[record] {recorder.video_note}', flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            stop.wait(0.5 if left is None else min(0.5, left))
    finally:
        if recorder is not None:
            recorder.close()
        for s, h in previous.items():
            signal.signal(s, h)
    for topic, n in sorted(recorder.counts.items()):
        print(f'{n:8d}  {topic}')
    print(f'[record] {recorder.sink.messages} messages, {recorder.sink.bytes} bytes -> {args.out}')
    return 0
