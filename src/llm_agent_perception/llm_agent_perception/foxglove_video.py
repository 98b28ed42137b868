"""foxglove_msgs/msg/CompressedVideo as Foxglove reads it from an MCAP file, without the
foxglove_msgs package: its ros2msg schema text and its CDR bytes (no rclpy)."""
from __future__ import annotations

import struct

from .video_codec import CODECS, DECODER_FOR

TYPE_NAME = 'foxglove_msgs/msg/CompressedVideo'
# The schema written into the recording (rosbag2's ros2msg layout), so Foxglove needs no
# foxglove_msgs install to play the channel.
SCHEMA = ('builtin_interfaces/Time timestamp\nstring frame_id\nuint8[] data\nstring format\n'
          + '=' * 80 + '\nMSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n')
# FFMPEGPacket.encoding (an encoder or codec name) -> CompressedVideo.format.
_FORMAT_OF_DECODER = {dec: fox for _enc, dec, fox in CODECS.values()}


def foxglove_format(encoding: str) -> str:
    """The CompressedVideo.format of a stream ('h264', 'h265', 'av1', 'vp9'); ValueError if none."""
    decoder = DECODER_FOR.get(encoding.strip().lower())
    if decoder not in _FORMAT_OF_DECODER:
        raise ValueError(f'no Foxglove video format for encoding {encoding!r}')
    return _FORMAT_OF_DECODER[decoder]


def _string(out: bytearray, text: str) -> None:
    raw = text.encode('utf-8') + b'\0'
    _align(out, 4)
    out += struct.pack('<I', len(raw)) + raw


def _align(out: bytearray, n: int) -> None:
    # CDR aligns from the start of the payload, after the 4-byte encapsulation header.
    out += b'\0' * (-(len(out) - 4) % n)


def compressed_video_cdr(sec: int, nanosec: int, frame_id: str, data: bytes, fmt: str) -> bytes:
    """One CompressedVideo message, CDR little-endian (what rosbag2 and Foxglove read)."""
    out = bytearray(b'\x00\x01\x00\x00')       # encapsulation: CDR_LE
    out += struct.pack('<iI', int(sec), int(nanosec))
    _string(out, frame_id)
    _align(out, 4)
    out += struct.pack('<I', len(data)) + bytes(data)
    _string(out, fmt)
    return bytes(out)
