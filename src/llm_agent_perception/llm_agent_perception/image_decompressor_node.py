"""Decode camera/image_raw/compressed to a raw Image, for nodes without image_transport."""
from __future__ import annotations

import time

import numpy as np
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
from sensor_msgs.msg import CompressedImage, Image

from . import depth_codec, image_codec

PARAMS = [
    Param('in_topic', 'camera/image_raw/compressed',
          'CompressedImage topic to read (jpeg/png, or compressedDepth png/zstd)', read_only=True),
    Param('out_topic', 'camera/image_decompressed', 'Image topic to write the decoded frames to',
          read_only=True),
]


def array_to_image(img: np.ndarray, encoding: str, header) -> Image:
    """Wrap a decoded array as sensor_msgs/Image (little-endian)."""
    img = np.ascontiguousarray(img)
    h, w = img.shape[:2]
    return Image(header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
                 step=int(img.strides[0]), data=img.tobytes())


class ImageDecompressor(GuardedNode):
    """Decode each compressed frame (image or depth) and republish it raw."""

    def __init__(self, **kwargs) -> None:
        super().__init__('image_decompressor', **kwargs)
        self.params = Params(self, PARAMS)
        self.bad = BadInputs(self)
        self.stats = StreamStats(work='decode')
        self._pub = self.create_publisher(Image, self.params['out_topic'], sensor_pub_qos(5))
        self.create_subscription(CompressedImage, self.params['in_topic'], self._on_msg,
                                 sensor_qos(1))
        self.diagnostics = Diagnostics(self, self.stats.key_values, self.bad)

    def _on_msg(self, msg: CompressedImage) -> None:
        self.stats.rate_in.add(len(msg.data))
        t0 = time.perf_counter()
        try:
            if 'compressedDepth' in msg.format:
                img, encoding = depth_codec.decode(msg.format, msg.data)
            else:
                img, encoding = image_codec.decode(msg.format, msg.data)
        except image_codec.BadInput as exc:
            self.bad.report('compressed', str(exc))
            return
        self.stats.work_ms.add(1000.0 * (time.perf_counter() - t0))
        out = array_to_image(img, encoding, msg.header)
        self._pub.publish(out)
        self.stats.rate_out.add(len(out.data))


COMPONENT = Component(ImageDecompressor)


def main(args=None) -> int:
    """Run the image_decompressor node until Ctrl-C."""
    return run_component(COMPONENT, args)


if __name__ == '__main__':
    raise SystemExit(main())
