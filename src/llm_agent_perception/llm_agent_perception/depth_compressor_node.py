"""Compress camera/depth/image_raw to .../compressedDepth (stock png layout, or zstd)."""
from __future__ import annotations

import time

from llm_agent_common.node import (
    BadInputs,
    Component,
    Diagnostics,
    GuardedNode,
    LazyInput,
    Param,
    Params,
    StreamInput,
    StreamStats,
    run_component,
    sensor_pub_qos,
    sensor_qos,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CompressedImage, Image

from . import depth_codec
from .image_codec import BadInput

PARAMS = [
    Param('format', 'png', 'png: compressed_depth_image_transport layout (stock plugin reads '
          'it); zstd: ours, faster and smaller, NOT readable by the stock plugin',
          allowed=depth_codec.DEPTH_FORMATS),
    Param('depth_max', 10.0, 'Depths at or beyond this many metres are sent as 0 (invalid)',
          range=(0.1, 100.0)),
    Param('depth_quantization', 100.0, '32FC1 only: inverse-depth quantization parameter '
          '(the stock plugin default; larger = finer near range)', range=(1.0, 10000.0)),
    Param('png_level', 1, 'PNG compression level 0..9 (the stock plugin default 9 encodes ~50x '
          'slower for ~17% fewer bytes; every level is stock-readable)',
          range=(0, 9)),
    Param('png_filter', 'up', 'PNG row filter: up (each row against the one above: fast on '
          'depth), none, sub, paeth, or adaptive (libpng picks per row: smallest, slowest); '
          'every filter is stock-readable', allowed=tuple(depth_codec.PNG_FILTERS)),
    Param('lazy', True, 'Read the depth camera only while someone subscribes to the output (as '
          "image_transport's publishers encode only for subscribers); false = always",
          read_only=True),
    Param('zstd_level', 1, 'zstd level for format zstd (1 = fastest)', range=(1, 19)),
]


class DepthCompressor(GuardedNode):
    """Take the newest depth frame on the input's thread, encode it there, publish it."""

    def __init__(self, **kwargs) -> None:
        super().__init__('depth_compressor', **kwargs)
        self.params = Params(self, PARAMS)
        self.bad = BadInputs(self)
        self.stats = StreamStats()
        self._pub = self.create_publisher(
            CompressedImage, 'camera/depth/image_raw/compressedDepth', sensor_pub_qos(5))

        def subscribe():
            # Frames are taken and encoded on the input's own thread (StreamInput).
            return StreamInput(self, Image, 'camera/depth/image_raw', self._on_image,
                               sensor_qos(1), 'depth_compressor_input')
        if self.params['lazy']:
            self.input = LazyInput(self, lambda: [self._pub], subscribe,
                                   callback_group=MutuallyExclusiveCallbackGroup())
        else:
            self.input = subscribe()
        self.diagnostics = Diagnostics(self, self._figures, self.bad,
                                       callback_group=MutuallyExclusiveCallbackGroup())

    def _figures(self):
        return self.stats.key_values()

    def _on_image(self, msg: Image) -> None:
        self.stats.rate_in.add(len(msg.data))
        try:
            self._encode(msg)
        except Exception as exc:  # noqa: BLE001 - a frame the encoder cannot take: counted
            self.bad.report('encode_error', repr(exc))

    def _encode(self, msg: Image) -> None:
        p = self.params.values
        try:
            depth = depth_codec.depth_to_array(msg.encoding, msg.width, msg.height, msg.step,
                                               msg.data, msg.is_bigendian)
        except BadInput as exc:
            self.bad.report('depth', str(exc))
            return
        t0 = time.perf_counter()
        enc = depth_codec.encode(depth, msg.encoding, p['format'], p['depth_max'],
                                 p['depth_quantization'], p['png_level'], p['zstd_level'],
                                 p['png_filter'])
        self.stats.work_ms.add(1000.0 * (time.perf_counter() - t0))
        self._pub.publish(CompressedImage(header=msg.header, format=enc.format, data=enc.data))
        self.stats.rate_out.add(len(enc.data))

    def close(self) -> None:
        """Stop the input's thread."""
        self.input.close()


COMPONENT = Component(DepthCompressor)


def main(args=None) -> int:
    """Run the depth_compressor node until Ctrl-C."""
    return run_component(COMPONENT, args)


if __name__ == '__main__':
    raise SystemExit(main())
