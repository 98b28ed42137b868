"""Decode a video stream (ffmpeg_image_transport's FFMPEGPacket) back to sensor_msgs/Image, for
nodes and tools without ffmpeg_image_transport."""
from __future__ import annotations

import time
from typing import Optional

from llm_agent_common.node import (
    BadInputs,
    Diagnostics,
    GuardedNode,
    Param,
    Params,
    StreamStats,
    run_node,
    sensor_pub_qos,
    sensor_qos,
)
from sensor_msgs.msg import Image

from . import video_codec
from .image_compressor_node import ffmpeg_packet_class
from .image_decompressor_node import array_to_image

PARAMS = [
    Param('in_topic', 'camera/image_raw/ffmpeg', 'FFMPEGPacket topic to read', read_only=True),
    Param('out_topic', 'camera/image_decoded', 'Image topic to write the decoded frames to',
          read_only=True),
]


class MissingMessages(RuntimeError):
    """ffmpeg_image_transport_msgs is not installed: this node has nothing to read."""


class VideoDecoderNode(GuardedNode):
    """Decode each packet of the stream and republish the frame as bgr8."""

    def __init__(self, **kwargs) -> None:
        packet = ffmpeg_packet_class()
        if packet is None:
            raise MissingMessages('ffmpeg_image_transport_msgs is not installed (on a robot: '
                                  'apt install ros-jazzy-ffmpeg-image-transport-msgs)')
        super().__init__('video_decoder', **kwargs)
        self.params = Params(self, PARAMS)
        self.bad = BadInputs(self)
        self.stats = StreamStats(work='decode')
        self._decoder: Optional[video_codec.VideoDecoder] = None
        self._pub = self.create_publisher(Image, self.params['out_topic'], sensor_pub_qos(5))
        # Every packet counts for a video stream: a dropped one costs frames up to the next
        # keyframe, so keep a few while one decodes.
        self.create_subscription(packet, self.params['in_topic'], self._on_packet, sensor_qos(10))
        self.diagnostics = Diagnostics(self, self._figures, self.bad)

    def _figures(self):
        kv = self.stats.key_values()
        kv['refused_packets'] = str(self._decoder.refused if self._decoder else 0)
        kv['encoding'] = self._decoder.encoding if self._decoder else ''
        return kv

    def _on_packet(self, msg) -> None:
        self.stats.rate_in.add(len(msg.data))
        t0 = time.perf_counter()
        try:
            if self._decoder is None or self._decoder.encoding != msg.encoding:
                self._decoder = video_codec.VideoDecoder(msg.encoding)
            img = self._decoder.decode(msg.data, msg.pts, bool(msg.flags & video_codec.KEY_FLAG),
                                       msg.width, msg.height)
        except video_codec.BadInput as exc:
            self.bad.report('packet', str(exc))
            return
        if img is None:
            return
        self.stats.work_ms.add(1000.0 * (time.perf_counter() - t0))
        out = array_to_image(img, 'bgr8', msg.header)
        self._pub.publish(out)
        self.stats.rate_out.add(len(out.data))


def main(args=None) -> int:
    """Run the video_decoder node until Ctrl-C."""
    return run_node(VideoDecoderNode, args, fatal=(MissingMessages,))


if __name__ == '__main__':
    raise SystemExit(main())
