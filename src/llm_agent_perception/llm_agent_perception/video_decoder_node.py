"""Decode a video stream back to sensor_msgs/Image, for nodes and tools without
ffmpeg_image_transport: ffmpeg_image_transport's FFMPEGPacket, or Foxglove's CompressedVideo
(`in_format: foxglove`, where foxglove_msgs is installed; keyframes found in the bitstream)."""
from __future__ import annotations

import time
from typing import Optional

from llm_agent_common.node import (
    BadInputs,
    Component,
    Diagnostics,
    GuardedNode,
    Param,
    Params,
    StreamStats,
    run_component,
    sensor_pub_qos,
    sensor_qos,
)
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from . import video_codec
from .image_compressor_node import COMPRESSED_VIDEO, FFMPEG_PACKET, optional_message
from .image_decompressor_node import array_to_image

PARAMS = [
    Param('in_format', 'ffmpeg', 'What in_topic carries: ffmpeg (ffmpeg_image_transport_msgs/'
          'FFMPEGPacket) or foxglove (foxglove_msgs/CompressedVideo)',
          allowed=('ffmpeg', 'foxglove'), read_only=True),
    Param('in_topic', 'camera/image_raw/ffmpeg', 'Video topic to read', read_only=True),
    Param('out_topic', 'camera/image_decoded', 'Image topic to write the decoded frames to',
          read_only=True),
]


class MissingMessages(RuntimeError):
    """The message package of the input is not installed: this node has nothing to read."""



class VideoDecoderNode(GuardedNode):
    """Decode each packet of the stream and republish the frame as bgr8."""

    def __init__(self, **kwargs) -> None:
        super().__init__('video_decoder', **kwargs)
        self.params = Params(self, PARAMS)
        foxglove = self.params['in_format'] == 'foxglove'
        package, message = COMPRESSED_VIDEO if foxglove else FFMPEG_PACKET
        packet = optional_message(package, message)
        if packet is None:
            raise MissingMessages(f'{package} is not installed (on a robot: apt install '
                                  f'ros-jazzy-{package.replace("_", "-")})')
        self.bad = BadInputs(self)
        self.stats = StreamStats(work='decode')
        self._decoder: Optional[video_codec.VideoDecoder] = None
        self._pub = self.create_publisher(Image, self.params['out_topic'], sensor_pub_qos(5))
        # Every packet counts for a video stream: a dropped one costs frames up to the next
        # keyframe, so keep a few while one decodes.
        self.create_subscription(packet, self.params['in_topic'],
                                 self._on_video if foxglove else self._on_packet, sensor_qos(10))
        self.diagnostics = Diagnostics(self, self._figures, self.bad)

    def _figures(self):
        kv = self.stats.key_values()
        kv['refused_packets'] = str(self._decoder.refused if self._decoder else 0)
        kv['encoding'] = self._decoder.encoding if self._decoder else ''
        return kv

    def _on_packet(self, msg) -> None:
        self._decode(msg.encoding, msg.data, msg.pts, bool(msg.flags & video_codec.KEY_FLAG),
                     msg.header, msg.width, msg.height)

    def _on_video(self, msg) -> None:
        header = Header(stamp=msg.timestamp, frame_id=msg.frame_id)
        pts = (msg.timestamp.sec * 1_000_000_000 + msg.timestamp.nanosec) // 1_000_000
        self._decode(msg.format, msg.data, pts, video_codec.keyframe_in(msg.format, msg.data),
                     header)

    def _decode(self, encoding: str, data, pts: int, keyframe: bool, header, width: int = 0,
                height: int = 0) -> None:
        self.stats.rate_in.add(len(data))
        t0 = time.perf_counter()
        try:
            if self._decoder is None or self._decoder.encoding != encoding:
                self._decoder = video_codec.VideoDecoder(encoding)
            img = self._decoder.decode(data, pts, keyframe, width, height)
        except video_codec.BadInput as exc:
            self.bad.report('packet', str(exc))
            return
        if img is None:
            return
        self.stats.work_ms.add(1000.0 * (time.perf_counter() - t0))
        out = array_to_image(img, 'bgr8', header)
        self._pub.publish(out)
        self.stats.rate_out.add(len(out.data))


COMPONENT = Component(VideoDecoderNode, fatal=(MissingMessages,))


def main(args=None) -> int:
    """Run the video_decoder node until Ctrl-C."""
    return run_component(COMPONENT, args)


if __name__ == '__main__':
    raise SystemExit(main())
