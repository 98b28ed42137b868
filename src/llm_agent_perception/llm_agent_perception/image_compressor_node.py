"""Compress camera/image_raw to camera/image_raw/compressed, compressed_image_transport's way."""
from __future__ import annotations

import time
from typing import Optional

from llm_agent_common.node import (
    BadInputs,
    Diagnostics,
    GuardedNode,
    LatestWorker,
    Param,
    Params,
    StreamStats,
    run_node,
    sensor_pub_qos,
    sensor_qos,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CompressedImage, Image

from . import image_codec
from .budget import BudgetController

PARAMS = [
    Param('format', 'jpeg', 'Compression: jpeg (lossy, small) or png (lossless)',
          allowed=image_codec.FORMATS),
    Param('jpeg_quality', 95, 'JPEG quality 1..100 (the stock plugin default is 95)',
          range=(1, 100)),
    Param('png_level', 3, 'PNG compression level 0..9 (higher: smaller, slower)', range=(0, 9)),
    Param('downscale', 1.0, 'Resize factor applied before encoding (1.0 = full size)',
          range=(0.05, 1.0)),
    Param('roi_x', 0, 'Region of interest: left column in pixels', range=(0, 100000)),
    Param('roi_y', 0, 'Region of interest: top row in pixels', range=(0, 100000)),
    Param('roi_width', 0, 'Region of interest width in pixels (0 = to the right edge)',
          range=(0, 100000)),
    Param('roi_height', 0, 'Region of interest height in pixels (0 = to the bottom edge)',
          range=(0, 100000)),
    Param('budget_bytes_per_s', 0, 'Bandwidth budget in bytes per second for jpeg; the quality '
          'is chosen frame by frame to hold it (0 = off: jpeg_quality is used)',
          range=(0, 1_000_000_000)),
    Param('budget_min_quality', 10, 'Lowest JPEG quality the budget mode may choose',
          range=(1, 100)),
    Param('budget_max_quality', 95, 'Highest JPEG quality the budget mode may choose',
          range=(1, 100)),
]


class ImageCompressor(GuardedNode):
    """Subscribe to raw frames, encode the newest one on a worker thread, publish it."""

    def __init__(self, **kwargs) -> None:
        super().__init__('image_compressor', **kwargs)
        self.params = Params(self, PARAMS, on_change=self._reset_budget)
        self.bad = BadInputs(self)
        self.stats = StreamStats()
        self._budget: Optional[BudgetController] = None
        self._last_out_t: Optional[float] = None
        self._reset_budget(self.params.values)
        self._pub = self.create_publisher(CompressedImage, 'camera/image_raw/compressed',
                                          sensor_pub_qos(5))
        self._worker = LatestWorker(self._encode, 'image_compressor_encode',
                                    on_error=lambda e: self.bad.report('encode_error', repr(e)))
        self.create_subscription(Image, 'camera/image_raw', self._on_image, sensor_qos(1),
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self.diagnostics = Diagnostics(self, self._figures, self.bad,
                                       callback_group=MutuallyExclusiveCallbackGroup())

    def _reset_budget(self, values) -> None:
        budget = int(values['budget_bytes_per_s'])
        lo, hi = int(values['budget_min_quality']), int(values['budget_max_quality'])
        if budget > 0:
            self._budget = BudgetController(budget, min(lo, hi), max(lo, hi),
                                            initial_quality=min(max(75, lo), hi))
        else:
            self._budget = None

    def _figures(self):
        kv = self.stats.key_values()
        kv['frames_dropped'] = str(self._worker.dropped)
        kv['jpeg_quality_now'] = str(self._budget.quality if self._budget else
                                     self.params['jpeg_quality'])
        return kv

    def _on_image(self, msg: Image) -> None:
        self.stats.rate_in.add(len(msg.data))
        self._worker.submit(msg)

    def _encode(self, msg: Image) -> None:
        p = self.params.values
        try:
            img = image_codec.image_to_array(msg.encoding, msg.width, msg.height, msg.step,
                                             msg.data, msg.is_bigendian)
        except image_codec.BadInput as exc:
            self.bad.report('image', str(exc))
            return
        t0 = time.perf_counter()
        roi = (p['roi_x'], p['roi_y'], p['roi_width'], p['roi_height'])
        use_roi = any(roi)
        img = image_codec.crop_and_scale(img, roi if use_roi else None, p['downscale'])
        budget = self._budget if p['format'] == 'jpeg' else None
        quality = budget.quality if budget is not None else p['jpeg_quality']
        enc = image_codec.encode(img, msg.encoding, p['format'], quality, p['png_level'])
        self.stats.work_ms.add(1000.0 * (time.perf_counter() - t0))
        if budget is not None:
            now = time.monotonic()
            dt = 1.0 / 30.0 if self._last_out_t is None else now - self._last_out_t
            self._last_out_t = now
            budget.update(len(enc.data), dt)
        out = CompressedImage(header=msg.header, format=enc.format, data=enc.data)
        self._pub.publish(out)
        self.stats.rate_out.add(len(enc.data))

    def close(self) -> None:
        """Stop the encoding thread."""
        self._worker.stop()


def main(args=None) -> int:
    """Run the image_compressor node until Ctrl-C."""
    return run_node(ImageCompressor, args)


if __name__ == '__main__':
    raise SystemExit(main())
